// `btcfed cert issue | check | renew` as an operator types them, on a real devnet's member dirs
// (btcfed init): a CA is used for its own member only, a check names what expires and when, and
// renewal issues every certificate again with its subject, names, usages and key, each file
// replaced whole, the pinned fingerprints following.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { reissueCertificate } from '#libs/rpc/certs.ts';
import { certificateFingerprint } from '#libs/rpc/index.ts';
import { startService } from './support/process.ts';

const root = path.resolve(import.meta.dirname, '..');
const btcfed = (cwd: string, ...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, 'cli/main.ts'), ...args], { cwd, encoding: 'utf8', timeout: 60_000 });

let dir: string;
const at = (...p: string[]) => path.join(dir, ...p);
const read = (...p: string[]) => fs.readFileSync(at(...p), 'utf8');
const x509 = (...p: string[]) => new X509Certificate(read(...p));
const M0_CERTS = ['tls/store.pem', 'tls/gateway.pem', 'tls/consensus.pem', 'tls/operator.pem', 'tls/client.pem', 'signer/tls/cert.pem'];

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-cert-'));
  const made = btcfed(dir, 'init', '--out', 'fed', '--members', '2', '--base-port', '27500');
  assert.equal(made.status, 0, made.stderr);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('cert issue refuses another member\'s CA (CERT_CA_MISMATCH): by its name, and by fingerprint against the member dir', () => {
  const wrong = btcfed(dir, 'cert', 'issue', '--client', 'pay', '--member-name', 'm0', '--ca-dir', 'fed/ca/m1', '--out', 'apps');
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /fed\/ca\/m1\/ca.pem is the CA "CN=btcfed m1 CA, O=btcfed", not member m0's \(CN=btcfed m0 CA\).* \(CERT_CA_MISMATCH\)/);
  assert.ok(!fs.existsSync(at('apps')), 'nothing written');

  // A CA that calls itself m0's but is not the one m0's services trust (m1's, renamed).
  fs.mkdirSync(at('fake-ca'));
  fs.copyFileSync(at('fed/ca/m1/ca.pem'), at('fake-ca/ca.pem'));
  fs.copyFileSync(at('fed/ca/m1/ca-key.pem'), at('fake-ca/ca-key.pem'));
  const byPrint = btcfed(dir, 'cert', 'issue', '--client', 'pay', '--member-name', 'm1', '--ca-dir', 'fake-ca', '--member-dir', 'fed/m0', '--out', 'apps');
  assert.equal(byPrint.status, 1);
  assert.match(byPrint.stderr, /not member m1's|is not the CA member m1's services trust/);
  const fp = btcfed(dir, 'cert', 'issue', '--client', 'pay', '--member-name', 'm0', '--ca-dir', 'fed/ca/m0', '--member-dir', 'fed/m1', '--out', 'apps');
  assert.equal(fp.status, 1);
  assert.match(fp.stderr, /fed\/ca\/m0\/ca.pem \(sha256 [0-9a-f]{16}…\) is not the CA member m0's services trust, \S+fed\/m1\/tls\/ca.pem .*\(CERT_CA_MISMATCH\)/);

  const ok = btcfed(dir, 'cert', 'issue', '--client', 'pay', '--member-name', 'm0', '--ca-dir', 'fed/ca/m0', '--member-dir', 'fed/m0', '--out', 'apps');
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(x509('apps/m0-client-pay.pem').checkIssued(x509('fed/m0/tls/ca.pem')));
});

test('cert check lists every certificate with its expiry; exit 1 when one expires within --within', () => {
  const ok = btcfed(dir, 'cert', 'check', '--dir', 'fed/m0');
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  for (const role of ['store', 'gateway', 'consensus', 'operator', 'client', 'signer']) assert.match(ok.stdout, new RegExp(`^ok +${role} +\\S+ +until \\S+ \\((82[45]) days\\)$`, 'm'));
  const soon = btcfed(dir, 'cert', 'check', '--dir', 'fed/m0', '--within', '900d');
  assert.equal(soon.status, 1);
  assert.match(soon.stdout, /^renew store /m);
  assert.match(soon.stderr, /6 of 6 certificate\(s\) of m0 expire within 900d .*\(CERT_CHECK_FAILED\)/);
  // The signer host alone: its dir is enough.
  const signer = btcfed(dir, 'cert', 'check', '--dir', 'fed/m0/signer');
  assert.equal(signer.status, 0, signer.stderr);
  assert.match(signer.stdout, /^ok +signer /m);
});

test('cert renew --within renews only what expires in the window; without it every certificate, same subject, names, usages and key; pins follow', async () => {
  // m0's store certificate made to expire in 10 days (by its own CA, as a real one nearing its end).
  const ca = { cert: read('fed/ca/m0/ca.pem'), key: read('fed/ca/m0/ca-key.pem') };
  fs.writeFileSync(at('fed/m0/tls/store.pem'), await reissueCertificate(ca, { cert: read('fed/m0/tls/store.pem'), key: read('fed/m0/tls/store-key.pem') }, { validDays: 10 }));
  const before = Object.fromEntries(M0_CERTS.map((f) => [f, x509('fed/m0', f)]));
  const keysBefore = Object.fromEntries(['tls/store-key.pem', 'tls/operator-key.pem', 'signer/tls/key.pem'].map((f) => [f, read('fed/m0', f)]));

  const windowed = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m0', '--ca-dir', 'fed/ca/m0', '--within', '30d');
  assert.equal(windowed.status, 0, windowed.stderr);
  assert.match(windowed.stdout, /^renewed store +\S+fed\/m0\/tls\/store.pem +until \S+ \(was \S+\)$/m);
  assert.equal(windowed.stdout.match(/^renewed /gm)?.length, 1, windowed.stdout);
  assert.equal(windowed.stdout.match(/^kept /gm)?.length, 5);
  const store = x509('fed/m0/tls/store.pem');
  assert.ok(Math.abs(Date.parse(store.validTo) - Date.now() - 10 * 86_400_000) < 120_000, 'as long as the old one was valid');
  assert.notEqual(store.serialNumber, before['tls/store.pem']!.serialNumber);
  assert.equal(x509('fed/m0/tls/gateway.pem').serialNumber, before['tls/gateway.pem']!.serialNumber, 'outside the window: untouched');

  const all = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m0', '--ca-dir', 'fed/ca/m0', '--valid-days', '400');
  assert.equal(all.status, 0, all.stderr);
  assert.equal(all.stdout.match(/^renewed /gm)?.length, 6, all.stdout);
  assert.match(all.stdout, /6 certificate\(s\) of m0 renewed: .*restart the services/);
  const caCert = x509('fed/m0/tls/ca.pem');
  for (const f of M0_CERTS) {
    const now = x509('fed/m0', f);
    const old = before[f]!;
    assert.equal(now.subject, old.subject, f);
    assert.equal(now.subjectAltName, old.subjectAltName, f);
    assert.deepEqual(now.keyUsage, old.keyUsage, f);
    assert.ok(now.checkIssued(caCert) && now.verify(caCert.publicKey), `${f}: signed by m0's CA`);
    assert.ok(Math.abs(Date.parse(now.validTo) - Date.now() - 400 * 86_400_000) < 120_000, f);
  }
  for (const [f, key] of Object.entries(keysBefore)) {
    assert.equal(read('fed/m0', f), key, `${f}: the key is kept`);
  }
  assert.ok(x509('fed/m0/signer/tls/cert.pem').checkPrivateKey(createPrivateKey(keysBefore['signer/tls/key.pem']!)));
  assert.deepEqual(fs.readdirSync(at('fed/m0/tls')).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');

  // The signer admits the new consensus certificate, the admin API the new operator certificate.
  const signer = parse(read('fed/m0/signer/signer.yaml')) as { allowed_clients: string[] };
  assert.ok(signer.allowed_clients.includes(certificateFingerprint(read('fed/m0/tls/consensus.pem'))));
  assert.ok(signer.allowed_clients.includes(certificateFingerprint(before['tls/consensus.pem']!.toString())), 'the old one stays until it expires');
  const conf = parse(read('fed/m0/conf.yaml')) as { services: { consensus: { admin_clients: string[] } } };
  assert.ok(conf.services.consensus.admin_clients.includes(certificateFingerprint(read('fed/m0/tls/operator.pem'))));
  assert.match(all.stdout, /^renewed consensus .*new fingerprint added to signer.yaml: allowed_clients$/m);
  const check = btcfed(dir, 'config', 'check', 'fed/m0/conf.yaml', 'fed/m0/signer/signer.yaml');
  assert.equal(check.status, 0, check.stdout);
});

test('cert renew with another member\'s CA refuses before writing anything (CERT_CA_MISMATCH)', () => {
  const before = M0_CERTS.map((f) => read('fed/m1', f));
  const r = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m1', '--ca-dir', 'fed/ca/m0');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /fed\/ca\/m0\/ca.pem is the CA "CN=btcfed m0 CA, O=btcfed", not member m1's .*\(CERT_CA_MISMATCH\)/);
  assert.deepEqual(M0_CERTS.map((f) => read('fed/m1', f)), before);
  // A certificate in the dir another CA issued: named, with its file.
  fs.copyFileSync(at('fed/m0/tls/store.pem'), at('fed/m1/tls/store.pem'));
  fs.copyFileSync(at('fed/m0/tls/store-key.pem'), at('fed/m1/tls/store-key.pem'));
  const mixed = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m1', '--ca-dir', 'fed/ca/m1');
  assert.equal(mixed.status, 1);
  assert.match(mixed.stderr, /fed\/m1\/tls\/store.pem: certificate CN=m0-store, O=btcfed \(issuer CN=btcfed m0 CA, O=btcfed\) was not issued by the CA CN=btcfed m1 CA.*\(CERT_CA_MISMATCH\)/);
  const check = btcfed(dir, 'cert', 'check', '--dir', 'fed/m1');
  assert.equal(check.status, 1);
  assert.match(check.stdout, /^CA\? +store .*not issued by the member's CA/m);
});

test('btcfed status with another member\'s certificates says which TLS check failed, at once, with a code (no 5 s "no answer")', { timeout: 60_000 }, async () => {
  // m0's store: a real gRPC server with m0's certificate, trusting m0's CA only.
  const store = startService('services/store/main.ts', ['--data-dir', at('fed/m0'), '--listen', '127.0.0.1:0', '--no-nats']);
  try {
    const port = (await store.waitFor((l) => l.msg === 'store ready', 30_000)).grpcPort as number;
    const dial = ['--consensus', `127.0.0.1:${port}`, '--timeout', '5s'];
    const timed = (...args: string[]) => { const t0 = Date.now(); const r = btcfed(dir, ...args); return { ...r, ms: Date.now() - t0 }; };

    // m1's files: its CA did not sign m0's server certificate.
    const untrusted = timed('status', '--member', 'fed/m1', ...dial);
    assert.equal(untrusted.status, 1);
    assert.match(untrusted.stderr, new RegExp(`^btcfed: the server at 127\\.0\\.0\\.1:${port} presents a certificate \\(CN=m0-store, O=btcfed, issued by CN=btcfed m0 CA, O=btcfed\\) not signed by the CA this client trusts \\(\\S+fed/m1/tls/ca.pem.* \\(RPC_TLS_SERVER_UNTRUSTED\\)\\n$`));
    // Trusting m0's CA but presenting m1's client certificate: m0's server refuses it.
    fs.cpSync(at('fed/m1'), at('mixed'), { recursive: true });
    fs.copyFileSync(at('fed/m0/tls/ca.pem'), at('mixed/tls/ca.pem'));
    const rejected = timed('status', '--member', 'mixed', ...dial);
    assert.equal(rejected.status, 1);
    assert.match(rejected.stderr, /^btcfed: the server at \S+ rejected our client certificate \S+mixed\/tls\/client.pem .* \(RPC_TLS_CLIENT_REJECTED\)\n$/);
    for (const r of [untrusted, rejected]) assert.ok(r.ms < 4000, `${r.ms} ms: well before the 5 s timeout (the CLI's own start included)`);
  } finally {
    await store.stop();
  }
});

test('cert renew --app-cert renews an application certificate cert issue made, with its name and key; cert check lists it', () => {
  const file = at('apps/m0-client-pay.pem');
  const before = x509('apps/m0-client-pay.pem');
  const key = read('apps/m0-client-pay-key.pem');
  const check = btcfed(dir, 'cert', 'check', '--dir', 'fed/m0', '--app-cert', 'apps/m0-client-pay.pem');
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`^ok +client +${file} `, 'm'));
  const r = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m0', '--ca-dir', 'fed/ca/m0', '--app-cert', 'apps/m0-client-pay.pem', '--valid-days', '30');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^renewed client +${file} +until `, 'm'));
  const now = x509('apps/m0-client-pay.pem');
  assert.equal(now.subject, before.subject);
  assert.notEqual(now.serialNumber, before.serialNumber);
  assert.equal(read('apps/m0-client-pay-key.pem'), key);
  assert.ok(now.checkIssued(x509('fed/m0/tls/ca.pem')));
  const missing = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m0', '--ca-dir', 'fed/ca/m0', '--app-cert', 'apps/nope.pem');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /--app-cert \S+apps\/nope.pem: a certificate NAME.pem from btcfed cert issue, with NAME-key.pem beside it \(CLI_INVALID\)/);
});
