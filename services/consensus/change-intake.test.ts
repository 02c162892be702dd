// A reconfiguration another validator passes on (change-intake.ts), with real SLH-DSA approvals:
// taken once, the same again a duplicate; a forged one refused as an offence naming why, and that
// sender's later ones not checked again in the epoch; another epoch's, an oversized one, one while
// another change is pending or while the epoch ends, each refused before any signature is checked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSlhDsa, reconfigSigningBytes, toHex, type KeyPair } from '#libs/crypto/index.ts';
import { ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import type { Block } from '#libs/hotstuff/index.ts';
import { ChangeIntake } from './change-intake.ts';
import type { Epoch } from './epochs.ts';
import type { PendingChange } from './epoch-switch.ts';
import type { SignatureVerifier } from './verifier.ts';

const CHAIN = 'change-intake';
const dsa = createSlhDsa();
const keys: KeyPair[] = Array.from({ length: 4 }, (_, i) => dsa.generateKeyPair(new Uint8Array(dsa.seedBytes).fill(90 + i)));
const set = ValidatorSet.fromConfig(keys.map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) }))).withSelf({ name: 'm0' });

function tx(change: Reconfiguration, by: number[], signer: (i: number) => KeyPair = (i) => keys[i]!): Uint8Array {
  return encodeReconfigTx({ change, approvals: by.map((validator) => ({ validator, signature: dsa.signSync(signer(validator).secretKey, reconfigSigningBytes(change)) })) });
}
const params = (epoch: number, baseTimeoutMs = 2500): Reconfiguration => ({ chainId: CHAIN, epoch, ops: [{ kind: 'params', baseTimeoutMs, idleHeartbeatMs: 1000 }] });

function harness(o: { epochs?: boolean; switching?: boolean } = {}) {
  let verified = 0;
  const epoch: Epoch = {
    number: 0, set, root: undefined as unknown as Block, verifier: undefined as unknown as SignatureVerifier, params: undefined,
    reconfig: { rules: { chainId: CHAIN, publicKeyBytes: dsa.publicKeyBytes }, verify: (pk, m, sig) => { verified++; return dsa.verifySync(pk, m, sig); } },
  };
  const said: { from: number; kind: 'refuse' | 'useless'; reason: string; detail: Record<string, unknown>; bytes?: number }[] = [];
  const adopted: { change: PendingChange; from: number }[] = [];
  let pending: PendingChange | undefined;
  const intake = new ChangeIntake({
    epoch: () => (o.epochs === false ? undefined : epoch), switching: () => o.switching === true, pending: () => pending,
    signatureBytes: dsa.signatureBytes,
    adopt: (change, from) => { adopted.push({ change, from }); pending = change; },
    refuse: (from, reason, detail) => { said.push({ from, kind: 'refuse', reason, detail }); },
    useless: (from, reason, detail, bytes) => { said.push({ from, kind: 'useless', reason, detail, bytes }); },
  });
  return { intake, said, adopted, epoch, verified: () => verified, setPending: (p: PendingChange | undefined) => { pending = p; } };
}

test('a valid change is taken once; the same again is a duplicate, read no further', () => {
  const h = harness();
  const t = tx(params(0), [0, 1, 2]);
  h.intake.onForward(2, 0, t);
  assert.equal(h.adopted.length, 1);
  assert.equal(h.adopted[0]!.from, 2);
  assert.equal(h.adopted[0]!.change.epoch, 0);
  assert.deepEqual(h.adopted[0]!.change.tx, t);
  assert.equal(h.said.length, 0, JSON.stringify(h.said));
  const checks = h.verified();
  assert.ok(checks >= 3, `its approvals were verified (${checks})`);
  // The submitter sends it again; another member passes the same on.
  h.intake.onForward(2, 0, t);
  h.intake.onForward(1, 0, t);
  assert.equal(h.adopted.length, 1);
  assert.deepEqual(h.said.map((s) => `${s.kind}:${s.reason}`), ['useless:duplicate', 'useless:duplicate']);
  assert.equal(h.said[0]!.bytes, t.length, 'a useless forward costs its size');
  assert.equal(h.verified(), checks, 'a duplicate is never verified again');
});

test('a forged change is an offence naming why; its sender is not checked again this epoch', () => {
  const h = harness();
  // Below a quorum; then a quorum's indices with m3's key under each.
  h.intake.onForward(3, 0, tx(params(0), [3, 1]));
  assert.equal(h.adopted.length, 0);
  assert.equal(h.said.length, 1);
  assert.equal(h.said[0]!.kind, 'refuse');
  assert.equal(h.said[0]!.reason, 'reconfig_invalid');
  assert.match(String(h.said[0]!.detail.why), /2 approvals, a quorum of epoch 0 is 3/);
  const checks = h.verified();
  h.intake.onForward(3, 0, tx(params(0, 3000), [0, 1, 3], () => keys[3]!));
  assert.deepEqual(h.said.map((s) => `${s.kind}:${s.reason}`), ['refuse:reconfig_invalid', 'useless:reconfig_spent']);
  assert.equal(h.verified(), checks, 'the sender\'s second change of the epoch is not verified');
  // Another validator's forgery is checked (its own one check) and refused.
  h.intake.onForward(1, 0, tx(params(0, 3000), [0, 1, 3], () => keys[3]!));
  assert.equal(h.said.at(-1)!.reason, 'reconfig_invalid');
  assert.match(String(h.said.at(-1)!.detail.why), /signature/i);
  assert.equal(h.adopted.length, 0);
  // Bytes that are no reconfiguration at all.
  h.intake.onForward(2, 0, new Uint8Array([1, 2, 3]));
  assert.equal(h.said.at(-1)!.reason, 'reconfig_invalid');
  assert.equal(h.adopted.length, 0);
});

test('refused before any signature is checked: another epoch, one too large, one while another is pending, while the epoch ends, without epochs', () => {
  const valid = tx(params(0), [0, 1, 2]);
  {
    const h = harness();
    h.intake.onForward(1, 1, tx(params(1), [0, 1, 2]));
    h.intake.onForward(1, 0, new Uint8Array(h.intake.maxBytes(h.epoch) + 1));
    assert.deepEqual(h.said.map((s) => `${s.kind}:${s.reason}`), ['useless:wrong_epoch', 'refuse:reconfig_invalid']);
    assert.match(String(h.said[1]!.detail.why), /more than the \d+ a change of 4 validators takes/);
    assert.equal(h.verified(), 0);
  }
  {
    const h = harness();
    // A change of a past epoch in a frame that says this one: its own epoch refuses it.
    h.intake.onForward(1, 0, tx(params(1), [0, 1, 2]));
    assert.equal(h.said[0]!.reason, 'reconfig_invalid');
    assert.match(String(h.said[0]!.detail.why), /epoch/);
    assert.equal(h.adopted.length, 0);
  }
  {
    const h = harness();
    h.intake.onForward(2, 0, valid);
    const checks = h.verified();
    h.intake.onForward(1, 0, tx(params(0, 4000), [0, 1, 2]));
    assert.equal(h.said.at(-1)!.reason, 'reconfig_busy');
    assert.equal(h.verified(), checks, 'one change per epoch: another is not checked');
    assert.equal(h.adopted.length, 1);
  }
  for (const [o, reason] of [[{ switching: true }, 'reconfig_switching'], [{ epochs: false }, 'reconfig_unavailable']] as const) {
    const h = harness(o);
    h.intake.onForward(1, 0, valid);
    assert.deepEqual(h.said.map((s) => `${s.kind}:${s.reason}`), [`useless:${reason}`]);
    assert.equal(h.verified(), 0);
    assert.equal(h.adopted.length, 0);
  }
});
