// The encrypted key file: round trip, wrong passphrase, tampering, permissions, no overwrite.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createSlhDsa } from '#libs/crypto/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { assertPrivateFile, openKey, readPassphrase, sealKey, writeNewKeyFile } from './keyfile.ts';
import { TEST_KDF } from './testkit.ts';

const code = (c: string) => (e: unknown) => isFedError(e, c);

test('seal and open: the secret comes back only with the right passphrase and an untouched file', async () => {
  const slh = createSlhDsa({ backend: 'node' });
  const pair = slh.generateKeyPair();
  const text = await sealKey(slh.paramSet, pair.secretKey, 'a good passphrase', TEST_KDF);
  assert.ok(!text.includes(Buffer.from(pair.secretKey).toString('base64')), 'no plaintext secret in the file');
  assert.ok(!text.includes(Buffer.from(pair.secretKey).toString('hex')), 'no plaintext secret in the file');
  const opened = await openKey(text, 'a good passphrase', 'k');
  assert.deepEqual(opened.secretKey, pair.secretKey);
  await assert.rejects(openKey(text, 'a wrong passphrase', 'k'), code('SIGNER_KEY_DECRYPT'));
  const k = JSON.parse(text);
  const other = slh.generateKeyPair();
  await assert.rejects(openKey(JSON.stringify({ ...k, publicKey: Buffer.from(other.publicKey).toString('hex') }), 'a good passphrase', 'k'), code('SIGNER_KEY_DECRYPT'));
  await assert.rejects(openKey(text.slice(0, 50), 'a good passphrase', 'k'), code('SIGNER_KEY_INVALID'));
  await assert.rejects(sealKey(slh.paramSet, pair.secretKey, 'short'), code('SIGNER_PASSPHRASE_WEAK'));
});

test('files others can read are refused; an existing key is never replaced', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'signer-key-'));
  try {
    const file = path.join(dir, 'signer.key');
    await writeNewKeyFile(file, '{}');
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    await assertPrivateFile(file, 'key file');
    await assert.rejects(writeNewKeyFile(file, '{"x":1}'), code('SIGNER_KEY_EXISTS'));
    assert.equal(await fs.readFile(file, 'utf8'), '{}');
    await fs.chmod(file, 0o644);
    await assert.rejects(assertPrivateFile(file, 'key file'), (e: unknown) => isFedError(e, 'SIGNER_KEY_PERMISSIONS') && /0644/.test(e.message));
    const pass = path.join(dir, 'pass');
    await fs.writeFile(pass, 'from a file\n', { mode: 0o600 });
    assert.equal(await readPassphrase({ file: pass }), 'from a file');
    await fs.chmod(pass, 0o640);
    await assert.rejects(readPassphrase({ file: pass }), code('SIGNER_KEY_PERMISSIONS'));
    assert.equal(await readPassphrase({ env: 'SIGNER_PP' }, { SIGNER_PP: 'from env' }), 'from env');
    await assert.rejects(readPassphrase({ env: 'SIGNER_PP' }, {}), code('SIGNER_PASSPHRASE_MISSING'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
