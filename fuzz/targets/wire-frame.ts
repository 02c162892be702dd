// Target wire-frame: a ConsensusFrame from a member's gateway stream into the consensus service
// (services/consensus/inbound.ts → libs/wire decodeFrame), and peekFrame's glance before it.
// Refusal: FedError WIRE_INVALID. peekFrame must never throw, and where it reads a frame the decoder
// accepts, the two must agree (kind, view, epoch, request id): it decides which frames are dropped as stale.

import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { ConsensusFrame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { decodeFrame, encodeFrame, peekFrame, type Frame } from '#libs/wire/index.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import {
  CHAIN, LIMITS, block, hash, header, phase, qc, sender, signature, view, wildArray, wildBlock, wildBytes, wildChain, wildHeader,
  wildPhase, wildQc, wildU32, wildU64, SIG_BYTES,
} from './wire-values.ts';

const valid: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ view, block, justify: qc, sender, signature }).map((m) => ({ type: 'consensus' as const, message: { type: 'proposal' as const, ...m } })),
  fc.record({ epoch: view, phase, view, blockHash: hash, sender, signature }).map((m) => ({ type: 'consensus' as const, message: { type: 'vote' as const, ...m } })),
  fc.record({ epoch: view, view, highQC: qc, sender, signature }).map((m) => ({ type: 'consensus' as const, message: { type: 'new-view' as const, ...m } })),
  fc.record({ epoch: view, qc, sender }).map((m) => ({ type: 'consensus' as const, message: { type: 'qc' as const, ...m } })),
  fc.record({ requestId: view, hashes: fc.array(hash, { maxLength: 64 }), fromHeight: view, maxBlocks: fc.integer({ min: 1, max: 64 }) })
    .map((r) => ({ type: 'block-request' as const, ...r })),
  fc.record({ requestId: view, blocks: fc.array(fc.record({ block, qc: fc.option(qc, { nil: undefined }) }), { maxLength: 3 }),
    end: fc.option(fc.record({ suffix: fc.array(header, { maxLength: 8 }), qc }), { nil: undefined }) })
    .map(({ requestId, blocks, end }) => ({ type: 'block-response' as const, requestId, blocks, ...(end && blocks.length > 0 ? { epochEnd: end } : {}) })),
  fc.record({ txs: fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }) }).map((b) => ({ type: 'tx-batch' as const, ...b })),
  fc.record({ requestId: view, oldestHeight: fc.integer({ min: 1, max: 1_000_000 }) }).map((r) => ({ type: 'block-response' as const, blocks: [], ...r })),
  fc.record({ requestId: view, fromEpoch: view }).map((r) => ({ type: 'checkpoint-request' as const, ...r })),
  fc.record({ requestId: view, epochs: fc.array(fc.record({ last: block, suffix: fc.array(header, { maxLength: 8 }), qc }), { maxLength: 3 }),
    tip: fc.option(fc.record({ block, qc: fc.option(qc, { nil: undefined }) }), { nil: undefined }) })
    .map(({ tip, ...r }) => ({ type: 'checkpoint-response' as const, ...r, ...(tip ? { tip } : {}) })),
  fc.record({ requestId: view, belowHeight: view, max: fc.integer({ min: 1, max: 4096 }) }).map((r) => ({ type: 'history-request' as const, ...r })),
  fc.record({ requestId: view, summaries: fc.array(fc.record({ header, txIds: fc.array(hash, { maxLength: 6 }) }), { maxLength: 5 }) })
    .map((r) => ({ type: 'history-response' as const, ...r })),
  // A proposal whose block travels as parts: batches by reference and transactions inline.
  fc.record({ view, block, justify: qc, sender, signature, parts: fc.array(fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((tx) => ({ tx })),
    fc.record({ digest: hash, author: sender, count: fc.integer({ min: 1, max: 512 }), bytes: fc.nat({ max: 4096 }) }).map((batch) => ({ batch })),
  ), { minLength: 1, maxLength: 8 }) })
    .map(({ parts, block: b, ...m }) => ({ type: 'consensus' as const, message: { type: 'proposal' as const, block: { ...b, txs: [] }, ...m }, parts })),
  fc.record({ requestId: view, digests: fc.array(hash, { maxLength: 16 }) }).map((r) => ({ type: 'batch-request' as const, ...r })),
  fc.record({ requestId: view, batches: fc.array(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), { maxLength: 4 }) })
    .map((r) => ({ type: 'batch-response' as const, ...r })),
  fc.record({ epoch: view, tx: fc.uint8Array({ minLength: 1, maxLength: 256 }) }).map((r) => ({ type: 'reconfig-forward' as const, ...r })),
);

/** A proposal's part with every field free to be wrong. */
const wildPart = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((value) => ({ part: { $case: 'tx' as const, value } })),
  fc.record({ digest: wildBytes(32), author: wildU32, count: wildU32, bytes: wildU64 }).map((value) => ({ part: { $case: 'batch' as const, value } })),
  fc.constant({ part: undefined }),
);

/** Every body kind with every field free to be wrong, encoded as protobuf. */
const wildBody: fc.Arbitrary<ConsensusFrame['body']> = fc.oneof(
  fc.record({ view: wildU64, block: fc.option(wildBlock, { nil: undefined }), justify: fc.option(wildQc, { nil: undefined }), sender: wildU32, signature: wildBytes(SIG_BYTES),
    parts: wildArray(wildPart, 20) })
    .map((value) => ({ $case: 'proposal' as const, value: value as never })),
  fc.record({ epoch: wildU64, phase: wildPhase, view: wildU64, blockHash: wildBytes(32), sender: wildU32, signature: wildBytes(SIG_BYTES) })
    .map((value) => ({ $case: 'vote' as const, value: value as never })),
  fc.record({ epoch: wildU64, view: wildU64, highQc: fc.option(wildQc, { nil: undefined }), sender: wildU32, signature: wildBytes(SIG_BYTES) })
    .map((value) => ({ $case: 'newView' as const, value: value as never })),
  fc.record({ epoch: wildU64, qc: fc.option(wildQc, { nil: undefined }), sender: wildU32 }).map((value) => ({ $case: 'qcAnnounce' as const, value: value as never })),
  fc.record({ requestId: wildU64, hashes: wildArray(wildBytes(32), 64), fromHeight: wildU64, maxBlocks: wildU32 }).map((value) => ({ $case: 'blockRequest' as const, value })),
  fc.record({ requestId: wildU64, blocks: wildArray(fc.record({ block: fc.option(wildBlock, { nil: undefined }), qc: fc.option(wildQc, { nil: undefined }) }), 64),
    epochEnd: fc.option(fc.record({ suffix: wildArray(wildHeader, 8), qc: fc.option(wildQc, { nil: undefined }) }), { nil: undefined }) })
    .map((value) => ({ $case: 'blockResponse' as const, value: value as never })),
  fc.record({ txs: wildArray(fc.uint8Array({ maxLength: 64 }), 100) }).map((value) => ({ $case: 'txBatch' as const, value })),
  fc.record({ requestId: wildU64, fromEpoch: wildU64 }).map((value) => ({ $case: 'checkpointRequest' as const, value })),
  fc.record({ requestId: wildU64,
    epochs: wildArray(fc.record({ last: fc.option(wildBlock, { nil: undefined }), suffix: wildArray(wildHeader, 9), qc: fc.option(wildQc, { nil: undefined }) }), 17),
    tip: fc.option(fc.record({ block: fc.option(wildBlock, { nil: undefined }), qc: fc.option(wildQc, { nil: undefined }) }), { nil: undefined }) })
    .map((value) => ({ $case: 'checkpointResponse' as const, value: value as never })),
  fc.record({ requestId: wildU64, belowHeight: wildU64, max: wildU32 }).map((value) => ({ $case: 'historyRequest' as const, value })),
  fc.record({ requestId: wildU64, summaries: wildArray(fc.record({ header: fc.option(wildHeader, { nil: undefined }), txIds: wildArray(wildBytes(32), 20) }), 40) })
    .map((value) => ({ $case: 'historyResponse' as const, value: value as never })),
  fc.record({ requestId: wildU64, digests: wildArray(wildBytes(32), 40) }).map((value) => ({ $case: 'batchRequest' as const, value })),
  fc.record({ requestId: wildU64, batches: wildArray(fc.record({ txs: wildArray(fc.uint8Array({ maxLength: 32 }), 10) }), 20) })
    .map((value) => ({ $case: 'batchResponse' as const, value })),
  fc.record({ epoch: wildU64, tx: fc.uint8Array({ maxLength: 300 }) }).map((value) => ({ $case: 'reconfigForward' as const, value })),
  fc.constant(undefined),
);

/** Encodes what the writer can; a value it refuses (a uint32 past 2^32) is sent as nothing. */
export function protoBytes<T>(encode: (m: T) => { finish(): Uint8Array }, m: T): Uint8Array {
  try { return encode(m).finish(); } catch { return new Uint8Array(); }
}

const generate = fc.oneof(
  valid.map((f) => encodeFrame(CHAIN, f)),
  fc.record({ chainId: wildChain, body: wildBody }).map((m) => protoBytes(ConsensusFrame.encode, m as ConsensusFrame)),
);

const KINDS: Record<string, string> = { proposal: 'proposal', vote: 'vote', 'new-view': 'new-view', qc: 'qc' };

function run(input: Uint8Array): void {
  const peek = peekFrame(input);
  const frame = decodeFrame(input, LIMITS);
  // A frame peek cannot read is left to the decoder (peek.ts): only what it does read must agree.
  if (!peek) return;
  if (frame.type !== 'consensus') {
    if (peek.kind !== frame.type) violated(`peek says ${peek.kind}, the decoder ${frame.type}`);
    const answers = frame.type === 'block-response' || frame.type === 'checkpoint-response' || frame.type === 'history-response' || frame.type === 'batch-response';
    if (answers && peek.requestId !== frame.requestId) violated(`peek request id ${peek.requestId}, decoded ${frame.requestId}`);
    // A forwarded change of another epoch is refused by the peek's epoch alone.
    if (frame.type === 'reconfig-forward' && peek.epoch !== frame.epoch) violated(`peek says epoch ${peek.epoch}, decoded ${frame.epoch}`);
    return;
  }
  const m = frame.message;
  if (peek.kind !== KINDS[m.type]) violated(`peek says ${peek.kind}, the decoder ${m.type}`);
  const v = m.type === 'qc' ? m.qc.view : m.view;
  const epoch = m.type === 'proposal' ? m.block.header.epoch : m.epoch;
  if (peek.view !== v || peek.epoch !== epoch) violated(`peek says view ${peek.view} epoch ${peek.epoch}, decoded view ${v} epoch ${epoch}`);
}

export const wireFrame: FuzzTarget<Frame> = {
  name: 'wire-frame',
  describe: 'ConsensusFrame bytes a member (or anyone who holds a seat\'s stream) sends: proposal, vote, new-view, QC announce, block sync request/response with epoch end or oldest height, tx batch, checkpoint and history request/response, a proposal\'s parts, batch request/response, a forwarded reconfiguration; decodeFrame and peekFrame',
  sources: ['libs/wire/frame.ts', 'libs/wire/convert.ts', 'libs/wire/peek.ts', 'libs/gen/btcfed/v1/wire.pb.ts'],
  generate,
  run,
  refusal: (err) => isFedError(err, 'WIRE_INVALID'),
  roundTrip: { values: valid, encode: (f) => encodeFrame(CHAIN, f), decode: (b) => decodeFrame(b, LIMITS) },
};
