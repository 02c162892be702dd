// The safety state bound to a token (state-file.ts authenticatedStore), its pure logic against a
// stand-in authority (an HMAC key and a counter in memory; the real token is exercised by
// test/signer-pkcs11.test.ts): records and counters, the one-record crash window, rollback, edits,
// a counter ahead, and a token that does not answer.

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { initialSafety, type SignerSafety } from './rules.ts';
import { authenticatedStore, safetyStore, type StateAuthority } from './state-file.ts';

function authority(): StateAuthority & { counter: bigint | undefined; down: boolean } {
  const key = randomBytes(32);
  const a = {
    key: 'k/state', describe: 'key "k/state" of a test token', counter: undefined as bigint | undefined, down: false,
    mac(data: Uint8Array) {
      if (a.down) throw new FedError('SIGNER_TOKEN_FAILED', 'gone');
      return new Uint8Array(createHmac('sha256', key).update(data).digest());
    },
    readCounter: () => a.counter,
    writeCounter(v: bigint) {
      if (a.down) throw new FedError('SIGNER_TOKEN_FAILED', 'gone');
      a.counter = v;
    },
  };
  return a;
}

const state = (view: number): SignerSafety => ({ ...initialSafety('c', 'ab'.repeat(32), new Uint8Array(32).fill(1)), lastVote: { view, phase: 0 }, signed: view });
const code = (c: string, re?: RegExp) => (err: unknown) => isFedError(err, c) && (!re || re.test(err.message));

async function withDir(fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'signer-state-auth-'));
  try {
    await fn(path.join(dir, 'state.json'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('each record raises the counter; the newest loads; an older one is a rollback; an edit is tampering', () => withDir(async (file) => {
  const a = authority();
  const store = authenticatedStore(file, a);
  await store.save(state(1));
  const first = await fs.readFile(file, 'utf8');
  await store.save(state(2));
  assert.equal(a.counter, 2n);
  assert.deepEqual(await authenticatedStore(file, a).load(), state(2));
  await fs.writeFile(file, first);
  await assert.rejects(authenticatedStore(file, a).load(), code('SIGNER_STATE_ROLLBACK', /record 1 but the token's counter is at 2/));
  const env = JSON.parse(first);
  env.auth.counter = 2; // an old record relabelled as the newest
  await fs.writeFile(file, JSON.stringify(env));
  await assert.rejects(authenticatedStore(file, a).load(), code('SIGNER_STATE_TAMPERED'));
}));

test('a crash between the file and the counter: one record ahead is accepted and the token catches up; two are not', () => withDir(async (file) => {
  const a = authority();
  await authenticatedStore(file, a).save(state(1));
  a.counter = 0n; // the counter write of record 1 never happened
  assert.deepEqual(await authenticatedStore(file, a).load(), state(1));
  assert.equal(a.counter, 1n, 'caught up');
  a.counter = undefined;
  await assert.rejects(authenticatedStore(file, a).load(), code('SIGNER_STATE_COUNTER', /holds no state counter/));
  const b = authority();
  await fs.rm(file);
  const s = authenticatedStore(file, b);
  await s.save(state(1));
  await s.save(state(2));
  await s.save(state(3));
  b.counter = 1n;
  await assert.rejects(authenticatedStore(file, b).load(), code('SIGNER_STATE_COUNTER', /record 3 .* at 1/));
}));

test('a plain state (file back-end) is unauthenticated; another token\'s is tampered', () => withDir(async (file) => {
  await safetyStore(file).save(state(1));
  await assert.rejects(authenticatedStore(file, authority()).load(), code('SIGNER_STATE_UNAUTHENTICATED', /bind-state/));
  await authenticatedStore(file, authority()).save(state(1));
  await assert.rejects(authenticatedStore(file, authority()).load(), code('SIGNER_STATE_TAMPERED', /another token's key/));
  assert.deepEqual(await safetyStore(file).load(), state(1), 'the file back-end still reads an authenticated file');
}));

test('a token that does not answer: nothing written before the MAC, a lagging counter after it, and the next save goes on', () => withDir(async (file) => {
  const a = authority();
  const store = authenticatedStore(file, a);
  await store.save(state(1));
  const before = await fs.readFile(file, 'utf8');
  a.down = true;
  await assert.rejects(store.save(state(2)), code('SIGNER_CUSTODY_UNAVAILABLE', /nothing was written/));
  assert.equal(await fs.readFile(file, 'utf8'), before);
  // The MAC answers, the counter write does not: the file is one record ahead.
  let calls = 0;
  const flaky = { ...a, mac: (d: Uint8Array) => { calls++; a.down = false; const m = a.mac(d); a.down = true; return m; } };
  await assert.rejects(authenticatedStore(file, flaky).save(state(2)), code('SIGNER_CUSTODY_UNAVAILABLE', /only the token's counter lags/));
  assert.equal(calls, 1);
  a.down = false;
  assert.deepEqual(await authenticatedStore(file, a).load(), state(2), 'a lagging counter is the crash window');
  await store.save(state(3));
  assert.deepEqual(await authenticatedStore(file, a).load(), state(3));
}));
