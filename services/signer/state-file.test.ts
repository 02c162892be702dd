// The safety state file: round trip, and a clear refusal for truncated, corrupt or edited files.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import { initialSafety, type SignerSafety } from './rules.ts';
import { decodeSafety, encodeSafety, safetyStore } from './state-file.ts';

const corrupt = (re: RegExp) => (err: unknown) => isFedError(err, 'SIGNER_STATE_CORRUPT') && re.test(err.message);

function sample(): SignerSafety {
  const s = initialSafety('c', 'ab'.repeat(32), new Uint8Array(32).fill(1));
  return { ...s, lastVote: { view: 7, phase: 2 }, signed: 3,
    recent: [{ kind: 'vote', view: 7, phase: 2, digest: 'cd'.repeat(32), blockHash: 'ef'.repeat(32), signature: new Uint8Array([1, 2, 3]) }] };
}

test('round trip through the file, durable and private (0600)', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'signer-state-'));
  try {
    const store = safetyStore(path.join(dir, 'state.json'));
    assert.equal(await store.load(), undefined, 'missing is reported as missing');
    await store.save(sample());
    assert.deepEqual(await store.load(), sample());
    assert.equal((await fs.stat(store.file)).mode & 0o777, 0o600);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a truncated file is refused, at any length', () => {
  const text = encodeSafety(sample());
  for (const cut of [0, 1, 10, text.length >> 1, text.length - 3]) {
    assert.throws(() => decodeSafety(text.slice(0, cut), 'f.json'), corrupt(/f\.json.*not valid JSON|f\.json.*not a signer state/));
  }
});

test('an edited value fails the checksum; a file of another shape is named', () => {
  const text = encodeSafety(sample());
  assert.throws(() => decodeSafety(text.replace('"view":7', '"view":6'), 'f'), corrupt(/checksum mismatch/));
  assert.throws(() => decodeSafety(text.replace('btcfed-signer-state', 'other'), 'f'), corrupt(/format/));
  assert.throws(() => decodeSafety('{"a":1}', 'f'), corrupt(/not a signer state file/));
  assert.throws(() => decodeSafety(text.replace(/"sha256": "[0-9a-f]+"/, '"sha256": "00"'), 'f'), corrupt(/sha256/));
  assert.match(encodeSafety(sample()), /"format": "btcfed-signer-state"/);
});

test('a structurally wrong state with a matching checksum is still refused, naming the field', () => {
  const env = JSON.parse(encodeSafety(sample()));
  env.state.lastVote.phase = 9;
  const body = JSON.stringify(env.state);
  env.sha256 = createHash('sha256').update(body).digest('hex');
  assert.throws(() => decodeSafety(JSON.stringify(env), 'f'), corrupt(/state\.lastVote\.phase/));
});


test('a version-1 file (written before epochs) reads as epoch 0; a version-2 file without its epoch is refused', () => {
  const { epoch, ...withoutEpoch } = JSON.parse(encodeSafety({ ...sample(), epoch: 0 })).state;
  assert.equal(epoch, 0);
  const v1 = JSON.stringify({ format: 'btcfed-signer-state', version: 1, sha256: createHash('sha256').update(JSON.stringify(withoutEpoch)).digest('hex'), state: withoutEpoch });
  assert.deepEqual(decodeSafety(v1, 'f'), { ...sample(), epoch: 0 });
  assert.throws(() => decodeSafety(v1.replace('"version":1', '"version":2'), 'f'), corrupt(/state\.epoch/));
  const later = { ...sample(), epoch: 3 };
  assert.deepEqual(decodeSafety(encodeSafety(later), 'f'), later, 'the epoch survives the round trip');
});

test('every kept signature is written as its own bytes, also when it is a view into a larger buffer, and again when a later state keeps it', () => {
  const pool = new Uint8Array(64).map((_, i) => i);
  const sig = (at: number) => pool.subarray(at, at + 7);
  const slot = (view: number, signature: Uint8Array) => ({ kind: 'vote' as const, view, phase: 1 as const, digest: 'cd'.repeat(32), blockHash: 'ef'.repeat(32), signature });
  const first: SignerSafety = { ...sample(), recent: [slot(7, sig(3)), slot(8, sig(20))] };
  assert.deepEqual(decodeSafety(encodeSafety(first), 'f'), first);
  // The next state keeps one of the same signature objects and adds another: each is its own.
  const next: SignerSafety = { ...first, recent: [first.recent[1]!, slot(9, sig(40))] };
  const back = decodeSafety(encodeSafety(next), 'f');
  assert.deepEqual(back, next);
  assert.deepEqual([...back.recent[0]!.signature], [20, 21, 22, 23, 24, 25, 26]);
});

test('a file in the earlier layout (the whole envelope indented, the state over many lines) still loads', () => {
  const s = sample();
  const state = { ...s, recent: s.recent.map((r) => ({ ...r, signature: Buffer.from(r.signature).toString('base64') })) };
  const sha256 = createHash('sha256').update(JSON.stringify(state)).digest('hex');
  const earlier = `${JSON.stringify({ format: 'btcfed-signer-state', version: 2, sha256, state }, null, 1)}\n`;
  assert.match(earlier, /\n {2}"lastVote": \{\n/, 'the earlier layout spreads the state over lines');
  assert.deepEqual(decodeSafety(earlier, 'f'), s);
  assert.ok(encodeSafety(s).length < earlier.length, 'the state is now written on one line');
});
