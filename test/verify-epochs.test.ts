// `btcfed verify` against a member that serves what a quorum of an ended epoch's retired keys forged
// (real SLH-DSA keys, a member stubbed at the gRPC client): a block of epoch 0 above the block
// that ended epoch 0 is refused, by its block or by its transaction's inclusion proof, once the
// client knows where epoch 0 ended — from the proof the member serves, or from the ends it kept.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import os from 'node:os';
import path from 'node:path';
import { blockHash, createSlhDsa, merkleProof, merkleRoot, nextStateHash, paramSpec, reconfigSigningBytes, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import { ValidatorSet, encodeReconfigTx, type Reconfiguration } from '#libs/validators/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import { WIRE_MAX_VALIDATORS, blockToWire, headerToWire, qcToWire } from '#libs/wire/index.ts';
import { TxStatus, type ConsensusServiceClient, type GetBlockRequest, type GetEpochsRequest, type GetTransactionRequest, type ListBlocksRequest } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { ERROR_CODE_TRAILER, RATE_LIMIT_CODE } from '#libs/rpc/index.ts';
import { loadKeptEpochs, verifyBlock, verifyTransaction, type Trust } from '../cli/verify.ts';

const CHAIN = `verify-cli-${process.pid}`;
const dsa = createSlhDsa();
const keys = Array.from({ length: 5 }, () => dsa.generateKeyPair());
const genesisSet = ValidatorSet.fromConfig(keys.slice(0, 4).map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));
const trust: Trust = {
  chainId: CHAIN, dsa, publicKeys: genesisSet.publicKeys(), genesis: genesisSet, publicKeyBytes: dsa.publicKeyBytes,
  limits: { validatorCount: WIRE_MAX_VALIDATORS, signatureBytes: paramSpec('slh-dsa-sha2-128f').signatureBytes },
};
const enc = (s: string) => new TextEncoder().encode(s);
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

function child(parent: Block, txs: Uint8Array[], epoch = 0): Block {
  const txRoot = merkleRoot(txs.map((t) => txHash(t)));
  const view = parent.header.height + 1;
  const header = { chainId: CHAIN, epoch, height: parent.header.height + 1, view, parentHash: parent.hash, proposer: 0, timestampMs: view,
    txRoot, stateHash: nextStateHash(parent.header.stateHash, txRoot) };
  return { header, hash: blockHash(header), txs };
}
function commitQc(b: Block): QuorumCert {
  const bytes = voteSigningBytes({ chainId: CHAIN, epoch: b.header.epoch, phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash });
  const signers = [0, 1, 2];
  return { phase: Phase.COMMIT, view: b.header.view, blockHash: b.hash, signers, signatures: signers.map((i) => dsa.signSync(keys[i]!.secretKey, bytes)) };
}

// Epoch 0 ends at height 2 (m4 added); epoch 0's keys, retired since, certify a block of epoch 0 above it.
const change: Reconfiguration = { chainId: CHAIN, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: keys[4]!.publicKey }] };
const reconfigTx = encodeReconfigTx({ change, approvals: [0, 1, 2].map((validator) => ({ validator, signature: dsa.signSync(keys[validator]!.secretKey, reconfigSigningBytes(change)) })) });
const b1 = child(genesisBlock(CHAIN, blockHash), [enc('alice pays bob')]);
const end = child(b1, [reconfigTx]);
const endProof: EpochChangeProof = { last: end, suffix: [], qc: commitQc(end) };
const forgedTx = enc('mallory was paid');
const forged = child(end, [forgedTx]);

/** A member serving `blocks` (height → block and its QC) and `proofs`, the ended epochs' proofs. */
function member(blocks: ReadonlyMap<number, { block: Block; qc?: QuorumCert }>, proofs: readonly EpochChangeProof[]): ConsensusServiceClient {
  const unary = <Req, Res>(answer: (r: Req) => Res) => (r: Req, _md: unknown, _o: unknown, cb: (err: Error | null, res?: Res) => void) => {
    queueMicrotask(() => { try { cb(null, answer(r)); } catch (err) { cb(err as Error); } });
    return { cancel: () => undefined };
  };
  const served = (h: number) => {
    const b = blocks.get(h);
    return b && { block: blockToWire(b.block), blockHash: b.block.hash, qc: b.qc && qcToWire(b.qc) };
  };
  return {
    getEpochs: unary((r: GetEpochsRequest) => ({
      proofs: proofs.slice(r.fromEpoch, r.fromEpoch + r.limit).map((p) => ({ last: blockToWire(p.last), suffix: p.suffix.map(headerToWire), qc: qcToWire(p.qc) })),
      currentEpoch: proofs.length,
    })),
    getBlock: unary((r: GetBlockRequest) => {
      const b = served(r.by!.value as number);
      if (!b) throw new Error('no such block');
      return b;
    }),
    listBlocks: unary((r: ListBlocksRequest) => ({ blocks: [served(r.fromHeight)].filter((b) => b !== undefined) })),
    getTransaction: unary((r: GetTransactionRequest) => {
      const b = [...blocks.values()].find(({ block }) => block.txs.some((t) => toHex(txHash(t)) === toHex(r.txHash)))!.block;
      const hashes = b.txs.map((t) => txHash(t));
      const index = hashes.findIndex((h) => toHex(h) === toHex(r.txHash));
      return { status: TxStatus.TX_STATUS_COMMITTED, height: b.header.height, blockHash: b.hash, index, header: headerToWire(b.header), txCount: hashes.length, proof: merkleProof(hashes, index) };
    }),
  } as unknown as ConsensusServiceClient;
}

const chain = new Map([[1, { block: b1 }], [2, { block: end, qc: endProof.qc }], [3, { block: forged, qc: commitQc(forged) }]]);

test('a block of an ended epoch above its last block, certified by that epoch\'s retired keys, is refused (by block and by inclusion proof)', async () => {
  const client = member(chain, [endProof]);
  const byBlock = await verifyBlock(client, trust, 3);
  assert.ok(!byBlock.ok && /block: height 3 is above its epoch's last block \(2\)/.test(byBlock.reason), byBlock.ok ? 'verified' : byBlock.reason);
  const byTx = await verifyTransaction(client, trust, txHash(forgedTx));
  assert.ok(!byTx.ok && /height 3 is above its epoch's last block \(2\)/.test(byTx.reason), byTx.ok ? 'verified' : byTx.reason);
  // The epoch's own blocks still verify: the one below its end, and its last by the proof its epoch ended with.
  assert.equal((await verifyBlock(client, trust, 1)).ok, true);
  assert.equal((await verifyBlock(client, trust, 2)).ok, true);
});

test('with --trusted-epochs, the end walked is kept: a member that then withholds the proof still cannot pass a block above it', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-verify-'));
  dirs.push(dir);
  const file = path.join(dir, 'trusted-epochs.json');
  const first = await verifyBlock(member(chain, [endProof]), trust, 1, undefined, loadKeptEpochs(file, trust));
  assert.ok(first.ok, first.ok ? '' : first.reason);
  assert.deepEqual(loadKeptEpochs(file, trust).ended.map((e) => e.height), [2], 'the end of the block\'s own epoch, checked, is kept');
  const withholding = member(chain, []);
  const v = await verifyBlock(withholding, trust, 3, undefined, loadKeptEpochs(file, trust));
  assert.ok(!v.ok && /height 3 is above its epoch's last block \(2\)/.test(v.reason), v.ok ? 'verified' : v.reason);
});

test('a block committed with its epoch\'s last block, which has no COMMIT QC of its own (the epoch ended with a suffix), verifies through the proof the epoch ended with', async () => {
  // Epoch 0 ends at height 2 (the change), certified through an empty block of epoch 0 above it
  // (the suffix, never committed); height 3 of the member's log is epoch 1's first block.
  const suffix = child(end, []);
  const proof: EpochChangeProof = { last: end, suffix: [suffix.header], qc: commitQc(suffix) };
  const next = child(end, [enc('carol pays dave')], 1);
  const log = new Map([[1, { block: b1 }], [2, { block: end }], [3, { block: next, qc: commitQc(next) }]]);
  const client = member(log, [proof]);
  for (const h of [1, 2]) {
    const v = await verifyBlock(client, trust, h);
    assert.ok(v.ok, `height ${h}: ${v.ok ? '' : v.reason}`);
  }
  const byTx = await verifyTransaction(client, trust, txHash(enc('alice pays bob')));
  assert.ok(byTx.ok, byTx.ok ? '' : byTx.reason);
});

test('a member that refuses each read once by its read limits (try again in 0.1 s) is asked again: the verdicts are the same, and each wait is said on stderr', async () => {
  // The refusal the public API gives a client that spent its read CPU (services/consensus/api-guard.ts).
  const refusal = (what: string) => {
    const metadata = new grpc.Metadata();
    metadata.set(ERROR_CODE_TRAILER, RATE_LIMIT_CODE);
    return Object.assign(new Error(what), { code: grpc.status.RESOURCE_EXHAUSTED, details: `${what}: reads may take at most 15 ms of CPU a second per client …; spent, try again in 0.1 s`, metadata });
  };
  const honest = member(chain, [endProof]) as unknown as Record<string, (...a: unknown[]) => unknown>;
  let refused = 0;
  const strict = Object.fromEntries(['getEpochs', 'getBlock', 'listBlocks', 'getTransaction'].map((name) => {
    let turn = 0;
    return [name, (r: unknown, md: unknown, o: unknown, cb: (err: Error | null) => void) => {
      if (turn++ % 2 === 0) { refused++; queueMicrotask(() => cb(refusal(name))); return { cancel: () => undefined }; }
      return honest[name]!(r, md, o, cb);
    }];
  })) as unknown as ConsensusServiceClient;
  const said: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => { said.push(s); return true; }) as typeof process.stderr.write;
  try {
    assert.equal((await verifyBlock(strict, trust, 1)).ok, true);
    const byTx = await verifyTransaction(strict, trust, txHash(forgedTx));
    assert.ok(!byTx.ok && /height 3 is above its epoch's last block \(2\)/.test(byTx.reason), byTx.ok ? 'verified' : byTx.reason);
  } finally {
    process.stderr.write = write;
  }
  assert.ok(refused >= 4, `${refused} refusals`);
  assert.equal(said.length, refused, `each wait said once: ${JSON.stringify(said)}`);
  assert.match(said[0]!, /btcfed: the member refused a read \((getBlock|getEpochs): reads may take .*try again in 0\.1 s\); asking again in 0\.1 s\n$/);
});
