// Native custody's failure handling (the token signs; services/signer/custody.ts `signInToken`).
// No token here signs SLH-DSA (SoftHSM2 2.6.1 lists no CKM_SLH_DSA), so the token is a stand-in
// that signs with the world's real key and can be made to fail as pkcs11.ts does
// (SIGNER_TOKEN_FAILED); everything around it is the real signer on real files.
// A token that fails while signing must be custody down like one that fails to authenticate the
// state: SIGNER_UNAVAILABLE, counted and logged, nothing signed or recorded, the same request
// signed once it answers again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { Phase } from '#libs/hotstuff/index.ts';
import { openCustodyKey } from '../services/signer/custody.ts';
import { loadSignerConf, openWithKey } from '../services/signer/open.ts';
import { makeSignerWorld } from '../services/signer/testkit.ts';
import { silent } from './support/signer.ts';

test('native custody: a token that fails while signing is custody down (UNAVAILABLE, counted), not a signature and not a poisoned signer', async () => {
  const w = await makeSignerWorld({ n: 4, self: 1 });
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  const conf = await loadSignerConf(w.dir);
  const fileKey = await openCustodyKey(conf, w.dir);
  const token = { down: false, signs: 0 };
  const key = {
    ...fileKey, secretKey: new Uint8Array(0), describe: 'pkcs11 native: a stand-in token',
    signInToken: async (m: Uint8Array) => {
      if (token.down) throw new FedError('SIGNER_TOKEN_FAILED', 'signing with "m1" on token "stand-in" failed: CKR_DEVICE_REMOVED');
      token.signs++;
      return w.slh.sign(fileKey.secretKey, m);
    },
  };
  const s = await openWithKey({ dataDir: w.dir, conf, init: true, log: silent, metrics }, key);
  try {
    const block = w.block(1, w.genesis);
    const vote = { kind: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: block.hash, header: block.header, justify: w.gqc };
    token.down = true;
    await assert.rejects(s.sign(vote), (err: unknown) => isFedError(err, 'SIGNER_UNAVAILABLE') && /CKR_DEVICE_REMOVED/.test(err.message));
    const text = await metrics.registry.metrics();
    assert.match(text, /btcfed_signer_custody_failures_total 1\b/);
    assert.match(text, /btcfed_signer_custody_state 0\b/);
    assert.equal(s.state.lastVote.view, 0, 'nothing recorded for a signature that was never made');
    token.down = false;
    const r = await s.sign(vote);
    assert.equal(r.replayed, false, 'the same request is signed once the token answers: the signer was not poisoned');
    assert.equal(token.signs, 1);
    assert.match(await metrics.registry.metrics(), /btcfed_signer_custody_state 1\b/);
    assert.equal(s.state.lastVote.view, 1);
  } finally {
    await s.close();
    await w.cleanup();
  }
});
