// The smaller sample with real SLH-DSA (libs/crypto, node:crypto backend where available):
// the engine verifies real signatures over the canonical signing bytes through the same
// injected `verify` the fake scheme uses; signatures by another member or over other
// bytes do not verify.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenario } from './simulator.ts';
import { createSlhScheme } from './slh-scheme.ts';
import { Kit, Phase } from './test-kit.ts';

test('N = 4 commits with real SLH-DSA signatures', () => {
  const scheme = createSlhScheme('slh-sample', 4, 3);
  const r = runScenario(
    { n: 4, seed: 3, chainId: 'slh-sample', healAtMs: 0, liveness: { commits: 3, views: 20 }, signDelayMs: 11 },
    { scheme },
  );
  assert.deepEqual(r.violations, []);
  assert.ok(r.livenessMet);
  assert.ok(r.stats.signatures >= 3 * 4 * 3, `${r.stats.signatures} real signatures`);
});

test('an SLH-DSA signature by the wrong member, or over other bytes, does not verify', () => {
  const scheme = createSlhScheme('kit', 4, 5);
  const k = new Kit(4);
  const vote = k.vote(Phase.PREPARE, 1, k.genesis, 2);
  const signed = { ...vote, signature: scheme.sign(2, { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: k.genesis.hash }) };
  assert.equal(scheme.verify(signed), true);
  assert.equal(scheme.verify({ ...signed, sender: 3 }), false);
  assert.equal(scheme.verify({ ...signed, view: 2 }), false);
  assert.equal(scheme.verify({ ...signed, signature: new Uint8Array(signed.signature.length) }), false);
});
