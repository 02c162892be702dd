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
  assert.throws(() => decodeSafety(text.replace('"view": 7', '"view": 6'), 'f'), corrupt(/checksum mismatch/));
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
