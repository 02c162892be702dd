// Block validity with the real hashes (SHA-256 header hash, Merkle root, running state hash).

import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash, createSlhDsa, merkleRoot, nextStateHash, reconfigSigningBytes, toHex, txHash } from '#libs/crypto/index.ts';
import { ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import { genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { blockEndsEpoch, blockError, blockTimeError, type ValidityContext } from './index.ts';

const enc = new TextEncoder();
const chainId = 'validity-test';
const committed = new Set<string>();
const ctx: ValidityContext = { chainId, hashBlock: blockHash, isCommitted: (id) => committed.has(toHex(id)) };
const genesis = genesisBlock(chainId, blockHash);

function block(parent: Block, txs: Uint8Array[], over: Partial<Block['header']> = {}): Block {
  const txRoot = merkleRoot(txs.map(txHash));
  const header = { chainId, epoch: 0, height: parent.header.height + 1, view: parent.header.view + 1, parentHash: parent.hash, proposer: 0,
    timestampMs: parent.header.timestampMs + 1, txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot), ...over };
  return { header, hash: blockHash(header), txs };
}

test('a well-formed block is valid, with or without its parent known', () => {
  const b = block(genesis, [enc.encode('a'), enc.encode('b')]);
  assert.equal(blockError(b, genesis, [], ctx), null);
  assert.equal(blockError(b, undefined, [], ctx), null);
});

test('the right header with other transactions is refused (tx root)', () => {
  const b = block(genesis, [enc.encode('a')]);
  assert.match(blockError({ ...b, txs: [enc.encode('forged')] }, genesis, [], ctx) ?? '', /tx_root/);
  assert.match(blockError({ ...b, txs: [enc.encode('forged')] }, undefined, [], ctx) ?? '', /tx_root/, 'even before the parent is known');
});

test('a state hash that does not follow from the parent is refused once the parent is known', () => {
  const b1 = block(genesis, [enc.encode('a')]);
  const b2 = block(b1, [enc.encode('b')], { stateHash: genesis.header.stateHash });
  assert.equal(blockError(b2, undefined, [], ctx), null, 'not checkable without the parent');
  assert.match(blockError(b2, b1, [b1], ctx) ?? '', /state_hash/);
});

test('cheap checks: chain id, header hash, height and parent link', () => {
  const b1 = block(genesis, [enc.encode('a')]);
  assert.match(blockError(block(genesis, [], { chainId: 'other' }), genesis, [], ctx) ?? '', /chain id/);
  assert.match(blockError({ ...b1, hash: genesis.hash }, genesis, [], ctx) ?? '', /hash/);
  assert.match(blockError(block(genesis, [], { height: 5 }), genesis, [], ctx) ?? '', /height/);
  assert.match(blockError(block(b1, []), genesis, [], ctx) ?? '', /parent/);
});

test('exactly-once: no tx twice in a block, none committed, none in an uncommitted ancestor', () => {
  const a = enc.encode('a');
  assert.match(blockError(block(genesis, [a, enc.encode('x'), a]), genesis, [], ctx) ?? '', /twice/);
  const b1 = block(genesis, [a]);
  assert.match(blockError(block(b1, [enc.encode('y'), a]), b1, [b1], ctx) ?? '', /uncommitted ancestor/);
  committed.add(toHex(txHash(enc.encode('done'))));
  assert.match(blockError(block(genesis, [enc.encode('done')]), genesis, [], ctx) ?? '', /already committed/);
});

test('exactly-once keeps nothing from one block\'s check to the next: a check cut short, then a block of the same ids, and many ids', () => {
  const [a, b] = [enc.encode('keep-a'), enc.encode('keep-b')];
  assert.match(blockError(block(genesis, [a, b, a]), genesis, [], ctx) ?? '', /transaction 2 .* twice/, 'stopped at the repeat');
  assert.equal(blockError(block(genesis, [b, a]), genesis, [], ctx), null, 'the same ids once each, in the next block');
  const b1 = block(genesis, [a]);
  assert.equal(blockError(block(b1, [b]), b1, [b1], ctx), null, 'an id of the last check is no ancestor of this one');
  // Thousands of ids: the table grows, a repeat at the end is still found, and the next block is clean.
  const many = Array.from({ length: 5_000 }, (_, i) => enc.encode(`many-${i}`));
  assert.equal(blockError(block(genesis, many), genesis, [], ctx), null);
  assert.match(blockError(block(genesis, [...many, many[4_321]!]), genesis, [], ctx) ?? '', /transaction 5000 .* twice/);
  assert.match(blockError(block(b1, [...many, a]), b1, [b1], ctx) ?? '', /uncommitted ancestor at height 1/);
  assert.equal(blockError(block(genesis, many.slice(0, 10)), genesis, [], ctx), null);
});

test('block time: strictly after the parent\'s, checked wherever the parent is known', () => {
  const b1 = block(genesis, [], { timestampMs: 3_600_000 });
  assert.equal(blockError(block(b1, [], { timestampMs: 3_600_001 }), b1, [b1], ctx), null);
  assert.match(blockError(block(b1, [], { timestampMs: 3_600_000 }), b1, [b1], ctx) ?? '', /timestamp 3600000 is not after its parent's \(3600000\)/);
  const backwards = block(b1, [], { timestampMs: 0 });
  assert.match(blockError(backwards, b1, [b1], ctx) ?? '', /not after its parent/, 'an hour before its parent');
  assert.equal(blockError(backwards, undefined, [], ctx), null, 'not checkable without the parent');
});

test('block time: a proposal is timely by the receiver\'s clock, within the drift ahead and the delay behind', () => {
  const bounds = { driftMs: 2_000, maxDelayMs: 30_000 };
  const now = 1_700_000_000_000;
  assert.equal(blockTimeError(now, now, bounds), null);
  assert.equal(blockTimeError(now + 2_000, now, bounds), null, 'the drift ahead is allowed');
  assert.match(blockTimeError(now + 2_001, now, bounds) ?? '', /2001 ms ahead of our clock \(drift allowed: 2000 ms\)/);
  assert.match(blockTimeError(now + 10 * 365 * 86_400_000, now, bounds) ?? '', /ahead/, 'ten years ahead');
  assert.equal(blockTimeError(now - 32_000, now, bounds), null, 'late by the delay plus the drift');
  assert.match(blockTimeError(now - 32_001, now, bounds) ?? '', /32001 ms behind our clock \(allowed: 32000 ms\)/);
});

describe('a reconfiguration in a block (real SLH-DSA approvals)', () => {
  const slh = createSlhDsa({ backend: 'auto' });
  const keys = Array.from({ length: 5 }, (_, i) => slh.generateKeyPair(new Uint8Array(slh.seedBytes).fill(i + 21)));
  const set = ValidatorSet.fromConfig(keys.slice(0, 4).map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));
  const reconfig = { set, rules: { chainId, publicKeyBytes: slh.publicKeyBytes }, verify: (pk: Uint8Array, m: Uint8Array, s: Uint8Array) => slh.verifySync(pk, m, s) };
  const withReconfig: ValidityContext = { ...ctx, reconfig };
  const change: Reconfiguration = { chainId, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: keys[4]!.publicKey }] };
  const approve = (c: Reconfiguration, by: number[]) => by.map((validator) => ({ validator, signature: slh.signSync(keys[validator]!.secretKey, reconfigSigningBytes(c)) }));
  const tx = (c: Reconfiguration, by: number[]) => encodeReconfigTx({ change: c, approvals: approve(c, by) });

  it('approved by a quorum of the block\'s epoch: valid, and the block ends its epoch', () => {
    const b = block(genesis, [enc.encode('a'), tx(change, [0, 1, 3])]);
    assert.equal(blockError(b, genesis, [], withReconfig), null);
    assert.equal(blockEndsEpoch(b), true);
    assert.equal(blockEndsEpoch(block(genesis, [enc.encode('a')])), false);
  });

  it('refused: below a quorum, a wrong signature, another epoch, two in a block, malformed, or a member that does not run epochs', () => {
    const cases: Array<[string, Block, RegExp]> = [
      ['two approvals of four', block(genesis, [tx(change, [0, 1])]), /transaction 0: 2 approvals, a quorum of epoch 0 is 3/],
      ['a signature over another change', block(genesis, [encodeReconfigTx({ change, approvals: [...approve(change, [0, 1]), approve({ ...change, epoch: 1 }, [2])[0]!] })]),
        /transaction 0: approvals\[2\]: validator 2 \(m2\)'s signature does not verify/],
      ['a change for epoch 1 in an epoch-0 block', block(genesis, [tx({ ...change, epoch: 1 }, [0, 1, 2])]), /transaction 0: the change ends epoch 1, the block is of epoch 0/],
      ['a change ending epoch 0 in a block of epoch 1', block(genesis, [tx(change, [0, 1, 2])], { epoch: 1 }), /the change ends epoch 0, the block is of epoch 1/],
      ['an invalid change (removing below four)', block(genesis, [tx({ chainId, epoch: 0, ops: [{ kind: 'remove', name: 'm0' }] }, [0, 1, 2])]), /ops: the change leaves 3 validators/],
      ['two reconfigurations', block(genesis, [tx(change, [0, 1, 2]), tx({ ...change, ops: [{ kind: 'remove', name: 'm3' }] }, [0, 1, 2])]), /transactions 0 and 1 are both reconfigurations/],
      ['a malformed one', block(genesis, [tx(change, [0, 1, 2]).subarray(0, 40)]), /transaction 0: change: length/],
    ];
    for (const [what, b, pattern] of cases) assert.match(blockError(b, genesis, [], withReconfig) ?? 'valid', pattern, what);
    assert.match(blockError(block(genesis, [tx(change, [0, 1, 2])]), genesis, [], ctx) ?? '', /transaction 0 is a reconfiguration, which this member does not run yet/);
  });
});
