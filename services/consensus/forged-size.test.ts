// A forged signature strikes its sender by the message's size (inbound.ts): a junk-signed vote is
// one strike, a junk-signed proposal of a megabyte about a dozen, so a flood of the largest
// proposals the gateway carries is muted at its first or second, not its sixteenth. Four drivers
// in one process (driver-harness.ts), real SLH-DSA verification, real LMDB stores.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash } from '#libs/crypto/index.ts';
import { mayLead } from '#libs/hotstuff/index.ts';
import { encodeFrame } from '#libs/wire/index.ts';
import { CHAIN, N, dsa, federation, stopAll, until, type Member } from './driver-harness.ts';
import { STRIKES_TO_MUTE } from './penalties.ts';

/** Junk-signed proposals from validator 3 for a view it may lead, `txBytes` of transactions each, every one distinct. */
function forgedProposals(victim: Member, count: number, txBytes: number): Uint8Array[] {
  const engine = victim.driver.engine;
  const view = [engine.view, engine.view + 1, engine.view + 2].find((v) => mayLead(v, 3, N) && (engine.settledLeaderOf(v) ?? 3) === 3);
  assert.ok(view !== undefined, `validator 3 leads none of views ${engine.view}–${engine.view + 2}`);
  return Array.from({ length: count }, (_, k) => {
    const txs = Array.from({ length: Math.ceil(txBytes / 60_000) }, (_, j) => new Uint8Array(Math.min(60_000, txBytes)).fill(k * 31 + j));
    const header = { chainId: CHAIN, epoch: 0, height: 1, view, parentHash: engine.safety.prepareQC?.blockHash ?? new Uint8Array(32), proposer: 3,
      timestampMs: Date.now(), txRoot: new Uint8Array(32).fill(k), stateHash: new Uint8Array(32) };
    return encodeFrame(CHAIN, { type: 'consensus', message: { type: 'proposal', view, block: { header, hash: blockHash(header), txs }, justify: engine.safety.prepareQC, sender: 3, signature: new Uint8Array(dsa.signatureBytes).fill(k + 1) } });
  });
}

const invalidSignatures = (m: Member) => m.refused.filter(([from, why]) => from === 3 && why === 'refused:invalid_signature').length;

test('junk-signed proposals strike by their size: two of a megabyte mute their sender, two small ones do not', async () => {
  const { members } = await federation();
  try {
    const [small, large] = [members[0]!, members[1]!];
    // Two small forgeries: two strikes of sixteen, checked and refused, no mute.
    for (const f of forgedProposals(small, 2, 200)) small.inbound.onFrame(3, f);
    await until('both small forgeries checked', () => small.refused.filter(([from]) => from === 3).length >= 2 || small.inbound.penalties.muted(3), 30_000);
    assert.equal(small.inbound.penalties.muted(3), false, `two small forged proposals muted their sender (refused: ${JSON.stringify(small.refused)})`);

    // Two of a megabyte each: each strikes a dozen times (its size in units of the largest other
    // message), so the second mutes; one strike each would leave the sender far from a mute.
    const frames = forgedProposals(large, 2, 960_000);
    assert.ok(frames.every((f) => f.length > 900_000));
    for (const f of frames) large.inbound.onFrame(3, f);
    await until('validator 3 muted by its junk-signed proposals', () => large.inbound.penalties.muted(3), 30_000);
    assert.ok(large.mutes.some(([peer]) => peer === 3), 'the mute reaches the transport');
    assert.ok(2 < STRIKES_TO_MUTE);
  } finally {
    await stopAll(members);
  }
});

test('a message whose sender was muted while it waited for its signature check is dropped unread', async () => {
  const { members } = await federation();
  try {
    const victim = members[0]!;
    // Six at once: four checks run side by side (VERIFY_CONCURRENCY), two wait. The first two
    // failures mute validator 3 (each a dozen strikes); what starts after that is not checked.
    for (const f of forgedProposals(victim, 6, 960_000)) victim.inbound.onFrame(3, f);
    await until('every one of the six checked or dropped', () => victim.refused.filter(([from]) => from === 3).length >= 6, 30_000);
    const dropped = victim.refused.filter(([from, why]) => from === 3 && why === 'refused:muted').length;
    assert.ok(dropped >= 1, `none dropped as muted after the mute (refused: ${JSON.stringify(victim.refused)})`);
    assert.ok(invalidSignatures(victim) <= 5, `${invalidSignatures(victim)} of six checked`);
  } finally {
    await stopAll(members);
  }
});
