// signer.yaml (libs/config/signer.ts): defaults, and errors that name file, field and reason.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import { generateIdentity, parseSignerConfText } from '#libs/config/index.ts';

const key = (b: string) => b.repeat(64);
const [p0, p1] = [(await generateIdentity()).peerId, (await generateIdentity()).peerId];
const base = `member: m0\npassphrase_file: pass\nvalidators:\n  - { name: m0, peer_id: ${p0}, public_key: ${key('a')} }\n`;

function issue(text: string, field: RegExp, reason: RegExp): void {
  assert.throws(() => parseSignerConfText(text, '/d/signer.yaml'), (err: unknown) => {
    assert.ok(isFedError(err, 'CONFIG_INVALID'));
    assert.match(err.message, /^\/d\/signer\.yaml: /);
    const issues = err.details.issues as Array<{ field: string; reason: string }>;
    assert.ok(issues.some((i) => field.test(i.field) && reason.test(i.reason)), JSON.stringify(issues));
    return true;
  });
}

test('defaults: loopback listen, signer.key, 128f, no allow list, no NATS', () => {
  const c = parseSignerConfText(base);
  assert.equal(c.listen, '127.0.0.1:7400');
  assert.equal(c.key_file, 'signer.key');
  assert.equal(c.crypto.param_set, 'slh-dsa-sha2-128f');
  assert.equal(c.chain_id, 'btcfed-devnet');
  assert.deepEqual(c.allowed_clients, []);
  assert.deepEqual(c.operator_clients, [], 'no operator may approve a reconfiguration until listed');
  assert.equal(c.nats, undefined);
  assert.equal(parseSignerConfText(`${base}allowed_clients: ["${'AB:'.repeat(31)}AB"]\n`).allowed_clients[0], 'ab'.repeat(32));
});

test('journal rotation: 64 MiB and 16 old files by default, both settable, out of range refused', () => {
  assert.deepEqual(parseSignerConfText(base).journal, { rotate_mib: 64, keep_files: 16 });
  assert.deepEqual(parseSignerConfText(`${base}journal: { rotate_mib: 8 }\n`).journal, { rotate_mib: 8, keep_files: 16 });
  issue(`${base}journal: { rotate_mib: 0 }\n`, /^journal\.rotate_mib$/, /./);
  issue(`${base}journal: { keep_files: 0 }\n`, /^journal\.keep_files$/, /./);
  issue(`${base}journal: { rotate: 8 }\n`, /^journal\.rotate$/, /unknown field/);
});

test('errors name the field and the reason', () => {
  issue(base.replace('passphrase_file: pass\n', ''), /^passphrase_file$/, /exactly one/);
  issue(`${base}passphrase_env: X\n`, /^passphrase_file$/, /exactly one/);
  issue(`${base}allowed_clients: [nope]\n`, /^allowed_clients\.0$/, /fingerprint/);
  issue(`${base}operator_clients: [nope]\n`, /^operator_clients\.0$/, /fingerprint/);
  issue(`${base}allowed_clients: [nope]\noperator_clients: ["${'ab'.repeat(32)}"]\n`, /^allowed_clients\.0$/, /fingerprint/);
  issue(`${base}allowed_clients: ["${'AB:'.repeat(31)}AB"]\noperator_clients: ["${'ab'.repeat(32)}"]\n`, /^operator_clients\.0$/, /also in allowed_clients/);
  issue(`${base}colour: blue\n`, /^colour$/, /unknown field/);
  issue(`${base}listen: nowhere\n`, /^listen$/, /host:port/);
  issue(base.replace(key('a'), 'abcd'), /^validators\.0\.public_key$/, /32 bytes/);
  issue(`${base}  - { name: m1, peer_id: ${p1}, public_key: ${key('a')} }\n`, /^validators\.1\.public_key$/, /duplicate/);
  issue(`${base}tls: { ca_file: ca.pem }\n`, /^tls\.cert_file$/, /./);
  issue('member: [', /^$/, /./);
});
