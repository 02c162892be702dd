// `--version` and `--help` on every binary: printed on stdout, exit 0, nothing started.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { VERSION, buildInfo } from '#libs/version/index.ts';

const root = path.resolve(import.meta.dirname, '..');
const binaries = ['cli/main.ts', 'services/store/main.ts', 'services/gateway/main.ts', 'services/consensus/main.ts', 'services/signer/main.ts'];

test('every binary prints its version and its usage on stdout and exits 0', () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
  for (const bin of binaries) {
    const v = spawnSync(process.execPath, [path.join(root, bin), '--version'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(v.status, 0, `${bin} --version: ${v.stderr}`);
    // The version and the commit of this checkout (git's; "-dirty" while files are being edited).
    assert.equal(v.stdout.replace('-dirty)', ')'), `${VERSION} (commit ${buildInfo().commit.slice(0, 12)})\n`, `${bin} --version`);
    const h = spawnSync(process.execPath, [path.join(root, bin), '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(h.status, 0, `${bin} --help: ${h.stderr}`);
    assert.match(h.stdout, /^usage:|^Usage: btcfed/, `${bin} --help`);
  }
});

test('btcfed: an unknown command or flag is a usage error (exit 2, says which); a failed command exits 1', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'cli/main.ts'), ...args], { encoding: 'utf8', timeout: 30_000 });
  const unknown = run('frobnicate');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /^btcfed: unknown command 'frobnicate'/);
  const flag = run('status', '--bogus');
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /^btcfed: unknown option '--bogus'\n\(btcfed status --help shows the usage\)/);
  const missing = run('verify');
  assert.equal(missing.status, 2, 'a missing required option is usage');
  assert.match(missing.stderr, /^btcfed: verify needs --height H, --tx HASH, or both/);
  const failed = run('verify', '--height', '1', '--member', '/nonexistent-member-dir');
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /^btcfed: \/nonexistent-member-dir\/conf.yaml not found: .* \(MEMBER_DIR_INVALID\)\n$/);
});

test('no service loads Node\'s HTTP client (undici) at start: none uses it, and loading it costs 10–25 ms of a start', () => {
  // An ESM import of node:http reads its lazy fetch/WebSocket exports, which load undici
  // (libs/metrics/serve.ts takes node:http through require for this). `--help` loads every module
  // the service's main.ts imports; the preload reports, at exit, what Node loaded of its own.
  const report = 'data:text/javascript,process.on("exit",()=>process.stderr.write("\\nloaded-undici="+process.moduleLoadList.some((m)=>m.includes("undici"))))';
  for (const bin of binaries.filter((b) => b.startsWith('services/'))) {
    const h = spawnSync(process.execPath, ['--import', report, path.join(root, bin), '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(h.status, 0, `${bin} --help: ${h.stderr}`);
    assert.match(h.stderr, /loaded-undici=false/, `${bin} loads undici at start`);
  }
});

test('the store, the signer and consensus load none of libp2p\'s modules, pino-pretty or protobufjs to start, nor libp2p\'s to read an Ed25519 identity and TCP addresses', async () => {
  // Loaded for nothing they would cost each start: libp2p's key, peer-id and multiaddr modules
  // some 200 ms of CPU (libs/config/common-forms.ts; a gateway needs them anyway), pino-pretty 25 ms
  // (text logs only, libs/log), protobufjs and proto-loader some 140 ms with the health service's
  // .proto (libs/rpc/health.ts; reflection loads them at its first call). The preload names what
  // of these is loaded.
  const count = 'data:text/javascript,import{registerHooks}from"node:module";const seen=new Set();registerHooks({load(u,c,next){const m=/node_modules\\/((@libp2p\\/[^/]+)|@multiformats\\/multiaddr|libp2p|pino-pretty|protobufjs|@grpc\\/proto-loader|grpc-health-check)\\//.exec(u);if(m)seen.add(m[1]);return next(u,c)}});process.on("exit",()=>process.stderr.write("\\nunwanted-modules=["+[...seen].join(",")+"]"))';
  for (const bin of binaries.filter((b) => /services\/(store|signer|consensus)\//.test(b))) {
    const h = spawnSync(process.execPath, ['--import', count, path.join(root, bin), '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(h.status, 0, `${bin} --help: ${h.stderr}`);
    assert.match(h.stderr, /unwanted-modules=\[\]$/, `${bin} loads these at start`);
  }
  const { generateIdentity } = await import('#libs/config/index.ts');
  const id = await generateIdentity();
  const read = `
    const v = await import(${JSON.stringify(path.join(root, 'libs/config/values.ts'))});
    const id = JSON.parse(process.env.ID);
    const out = [v.parsePrivateKey(id.privateKey), v.parsePublicKey(id.publicKey), v.parsePeerId(id.peerId),
      v.parseTcpMultiaddr('/ip4/10.20.0.3/tcp/7105/p2p/' + id.peerId), v.parseTcpMultiaddr('/dns4/m1.example/tcp/7105'),
      v.parseTcpMultiaddr('/ip4/0.0.0.0/tcp/0', { listen: true })];
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--import', count, '--input-type=module', '-e', read], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ID: JSON.stringify(id) } });
  assert.equal(r.status, 0, r.stderr);
  const [priv, pub, peer, addr, dns, listen] = JSON.parse(r.stdout) as { ok: boolean; value?: unknown }[];
  assert.deepEqual(priv, { ok: true, value: { peerId: id.peerId, publicKey: id.publicKey } });
  assert.deepEqual(pub, { ok: true, value: { peerId: id.peerId } });
  assert.deepEqual(peer, { ok: true, value: id.peerId });
  assert.deepEqual(addr, { ok: true, value: { address: `/ip4/10.20.0.3/tcp/7105/p2p/${id.peerId}`, host: '10.20.0.3', port: 7105, peerId: id.peerId } });
  assert.deepEqual(dns, { ok: true, value: { address: '/dns4/m1.example/tcp/7105', host: 'm1.example', port: 7105 } });
  assert.equal(listen!.ok, true);
  assert.match(r.stderr, /unwanted-modules=\[\]$/, 'reading the common forms loaded these');
});
