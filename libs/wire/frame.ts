// ConsensusFrame: the unit the gateway carries between members. Decoding checks the cheapest first:
// size limit first, then protobuf decoding, then field checks (convert.ts); signatures and
// protocol rules come after, in the consensus service and the engine.

import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { Block, BlockHeader, ConsensusMessage, Hash, QuorumCert } from '#libs/hotstuff/index.ts';
import type { BatchRef, BlockPart } from '#libs/blocks/index.ts';
import { ConsensusFrame, type BlockPart as BlockPartMsg, type BlockSummary as BlockSummaryMsg, type EpochChangeProof as EpochChangeProofMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { encodeTxBatchFrame } from './block-bytes.ts';
import {
  blockFromWire, blockToWire, checkHash, checkPhase, checkSender, checkSignature, checkView, headerFromWire, headerToWire, invalid,
  qcFromWire, qcToWire, WIRE_MAX_VALIDATORS, type WireLimits,
} from './convert.ts';

export interface FrameLimits extends Required<WireLimits> {
  chainId: string;
  maxFrameBytes: number;
  /** Block sync: most blocks a request may ask for / a response may carry. */
  maxSyncBlocks: number;
  hashBlock(h: BlockHeader): Hash;
}

export interface CertifiedBlock { block: Block; qc: QuorumCert | undefined }

/** The proof that the epoch of a response's last block ended with it, but for that block (libs/verify EpochChangeProof). */
export interface EpochEnd { suffix: BlockHeader[]; qc: QuorumCert }

/** Most suffix headers an epoch end may carry (a COMMIT QC needs at most three blocks above the last). */
export const MAX_EPOCH_SUFFIX = 8;

/** A committed block without its transactions: its header and their ids, in order (wire.proto BlockSummary). */
export interface BlockSummary { header: BlockHeader; txIds: Hash[] }

/** An epoch-change proof as it travels (libs/verify EpochChangeProof, checked there). */
export interface WireEpochProof { last: Block; suffix: BlockHeader[]; qc: QuorumCert }

/** Most epoch proofs one checkpoint response carries; the requester asks again from the next. */
export const MAX_CHECKPOINT_EPOCHS = 16;
/** Most summaries one history request may ask for / one response may carry. */
export const MAX_HISTORY_SUMMARIES = 4096;

export type Frame =
  /** `parts`: a proposal's transactions as they travel (its block's `txs` then empty until they are resolved). */
  | { type: 'consensus'; message: ConsensusMessage; parts?: BlockPart[] | undefined }
  | { type: 'block-request'; requestId: number; hashes: Hash[]; fromHeight: number; maxBlocks: number }
  | { type: 'block-response'; requestId: number; blocks: CertifiedBlock[]; epochEnd?: EpochEnd | undefined; oldestHeight?: number | undefined }
  | { type: 'tx-batch'; txs: Uint8Array[] }
  | { type: 'checkpoint-request'; requestId: number; fromEpoch: number }
  | { type: 'checkpoint-response'; requestId: number; epochs: WireEpochProof[]; tip?: CertifiedBlock | undefined }
  | { type: 'history-request'; requestId: number; belowHeight: number; max: number }
  | { type: 'history-response'; requestId: number; summaries: BlockSummary[] }
  | { type: 'batch-request'; requestId: number; digests: Hash[] }
  | { type: 'batch-response'; requestId: number; batches: Uint8Array[][] }
  /** An operator's reconfiguration passed on by the validator it was submitted to (`tx`: the reconfiguration transaction, ending `epoch`). */
  | { type: 'reconfig-forward'; epoch: number; tx: Uint8Array };

const proofToWire = (p: WireEpochProof) => ({ last: blockToWire(p.last), suffix: p.suffix.map(headerToWire), qc: qcToWire(p.qc) });
export const summaryToWire = (s: BlockSummary) => ({ header: headerToWire(s.header), txIds: s.txIds });

export function encodeFrame(chainId: string, frame: Frame): Uint8Array {
  // A member's clients' transactions, hundreds a frame: written at their exact size (block-bytes.ts).
  if (frame.type === 'tx-batch') return encodeTxBatchFrame(chainId, frame.txs);
  return ConsensusFrame.encode({ chainId, body: toBody(frame) }).finish();
}

function toBody(frame: Frame): ConsensusFrame['body'] {
  switch (frame.type) {
    case 'consensus': {
      const m = frame.message;
      switch (m.type) {
        case 'proposal': {
          const parts = frame.parts?.map(partToWire) ?? [];
          const block = frame.parts ? { header: headerToWire(m.block.header), txs: [] } : blockToWire(m.block);
          return { $case: 'proposal', value: { view: m.view, block, justify: qcToWire(m.justify), sender: m.sender, signature: m.signature, parts } };
        }
        case 'vote':
          return { $case: 'vote', value: { epoch: m.epoch, phase: m.phase, view: m.view, blockHash: m.blockHash, sender: m.sender, signature: m.signature } };
        case 'new-view':
          return { $case: 'newView', value: { epoch: m.epoch, view: m.view, highQc: qcToWire(m.highQC), sender: m.sender, signature: m.signature } };
        case 'qc':
          return { $case: 'qcAnnounce', value: { epoch: m.epoch, qc: qcToWire(m.qc), sender: m.sender } };
        default: {
          const never: never = m;
          throw new FedError('WIRE_INVALID', `cannot encode ${JSON.stringify(never)}`);
        }
      }
    }
    case 'block-request':
      return { $case: 'blockRequest', value: { requestId: frame.requestId, hashes: frame.hashes, fromHeight: frame.fromHeight, maxBlocks: frame.maxBlocks } };
    case 'block-response':
      return { $case: 'blockResponse', value: { requestId: frame.requestId, blocks: frame.blocks.map((b) => ({ block: blockToWire(b.block), qc: b.qc ? qcToWire(b.qc) : undefined })),
        epochEnd: frame.epochEnd ? { suffix: frame.epochEnd.suffix.map(headerToWire), qc: qcToWire(frame.epochEnd.qc) } : undefined, oldestHeight: frame.oldestHeight ?? 0 } };
    case 'tx-batch':
      return { $case: 'txBatch', value: { txs: frame.txs } };
    case 'checkpoint-request':
      return { $case: 'checkpointRequest', value: { requestId: frame.requestId, fromEpoch: frame.fromEpoch } };
    case 'checkpoint-response':
      return { $case: 'checkpointResponse', value: { requestId: frame.requestId, epochs: frame.epochs.map(proofToWire),
        tip: frame.tip ? { block: blockToWire(frame.tip.block), qc: frame.tip.qc ? qcToWire(frame.tip.qc) : undefined } : undefined } };
    case 'history-request':
      return { $case: 'historyRequest', value: { requestId: frame.requestId, belowHeight: frame.belowHeight, max: frame.max } };
    case 'history-response':
      return { $case: 'historyResponse', value: { requestId: frame.requestId, summaries: frame.summaries.map(summaryToWire) } };
    case 'batch-request':
      return { $case: 'batchRequest', value: { requestId: frame.requestId, digests: frame.digests } };
    case 'batch-response':
      return { $case: 'batchResponse', value: { requestId: frame.requestId, batches: frame.batches.map((txs) => ({ txs })) } };
    case 'reconfig-forward':
      return { $case: 'reconfigForward', value: { epoch: frame.epoch, tx: frame.tx } };
    default: {
      const never: never = frame;
      throw new FedError('WIRE_INVALID', `cannot encode ${JSON.stringify(never)}`);
    }
  }
}

/** Bytes from a peer → a checked Frame, or FedError('WIRE_INVALID') saying which field and why. */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits): Frame {
  if (bytes.length > limits.maxFrameBytes) throw invalid('frame', `${bytes.length} bytes exceed the limit of ${limits.maxFrameBytes}`);
  let f: ConsensusFrame;
  try {
    f = ConsensusFrame.decode(bytes);
  } catch (err) {
    throw invalid('frame', `not a ConsensusFrame: ${errorMessage(err)}`);
  }
  if (f.chainId !== limits.chainId) throw invalid('chain_id', `"${f.chainId}" is not this chain ("${limits.chainId}")`);
  const body = f.body;
  if (!body) throw invalid('body', 'missing');
  switch (body.$case) {
    case 'proposal': {
      const p = body.value;
      const block = blockFromWire('proposal.block', p.block, limits, limits.hashBlock);
      const parts = p.parts.length > 0 ? partsFromWire(p.parts, block, limits) : undefined;
      return { type: 'consensus', message: {
        type: 'proposal', view: checkView('proposal.view', p.view), block,
        justify: qcFromWire('proposal.justify', p.justify, limits),
        sender: checkSender('proposal.sender', p.sender, limits),
        signature: checkSignature('proposal.signature', p.signature, limits),
      }, ...(parts ? { parts } : {}) };
    }
    case 'vote': {
      const v = body.value;
      return { type: 'consensus', message: {
        type: 'vote', epoch: checkView('vote.epoch', v.epoch), phase: checkPhase('vote.phase', v.phase), view: checkView('vote.view', v.view),
        blockHash: checkHash('vote.block_hash', v.blockHash), sender: checkSender('vote.sender', v.sender, limits),
        signature: checkSignature('vote.signature', v.signature, limits),
      } };
    }
    case 'newView': {
      const n = body.value;
      return { type: 'consensus', message: {
        type: 'new-view', epoch: checkView('new_view.epoch', n.epoch), view: checkView('new_view.view', n.view), highQC: qcFromWire('new_view.high_qc', n.highQc, limits),
        sender: checkSender('new_view.sender', n.sender, limits), signature: checkSignature('new_view.signature', n.signature, limits),
      } };
    }
    case 'qcAnnounce': {
      const q = body.value;
      return { type: 'consensus', message: { type: 'qc', epoch: checkView('qc_announce.epoch', q.epoch), qc: qcFromWire('qc_announce.qc', q.qc, limits), sender: checkSender('qc_announce.sender', q.sender, limits) } };
    }
    case 'blockRequest': {
      const r = body.value;
      if (r.hashes.length > limits.maxSyncBlocks) throw invalid('block_request.hashes', `more than ${limits.maxSyncBlocks}`);
      return {
        type: 'block-request', requestId: checkView('block_request.request_id', r.requestId),
        hashes: r.hashes.map((h, i) => checkHash(`block_request.hashes[${i}]`, h)),
        fromHeight: checkView('block_request.from_height', r.fromHeight),
        maxBlocks: Math.min(r.maxBlocks || limits.maxSyncBlocks, limits.maxSyncBlocks),
      };
    }
    case 'blockResponse': {
      const r = body.value;
      if (r.blocks.length > limits.maxSyncBlocks) throw invalid('block_response.blocks', `more than ${limits.maxSyncBlocks}`);
      const end = r.epochEnd;
      if (end && end.suffix.length > MAX_EPOCH_SUFFIX) throw invalid('block_response.epoch_end.suffix', `more than ${MAX_EPOCH_SUFFIX} headers`);
      if (end && r.blocks.length === 0) throw invalid('block_response.epoch_end', 'an epoch end without the block it ends with');
      if (r.oldestHeight > 0 && r.blocks.length > 0) throw invalid('block_response.oldest_height', 'set beside blocks (it answers a request below what the server keeps, with none)');
      return {
        ...(end ? { epochEnd: {
          suffix: end.suffix.map((h, i) => headerFromWire(`block_response.epoch_end.suffix[${i}]`, h)),
          qc: qcFromWire('block_response.epoch_end.qc', end.qc, limits),
        } } : {}),
        ...(r.oldestHeight > 0 ? { oldestHeight: checkView('block_response.oldest_height', r.oldestHeight) } : {}),
        type: 'block-response', requestId: checkView('block_response.request_id', r.requestId),
        blocks: r.blocks.map((b, i) => ({
          block: blockFromWire(`block_response.blocks[${i}].block`, b.block, limits, limits.hashBlock),
          qc: b.qc ? qcFromWire(`block_response.blocks[${i}].qc`, b.qc, limits) : undefined,
        })),
      };
    }
    case 'txBatch':
      return { type: 'tx-batch', txs: body.value.txs };
    case 'checkpointRequest':
      return { type: 'checkpoint-request', requestId: checkView('checkpoint_request.request_id', body.value.requestId), fromEpoch: checkView('checkpoint_request.from_epoch', body.value.fromEpoch) };
    case 'checkpointResponse': {
      const r = body.value;
      if (r.epochs.length > MAX_CHECKPOINT_EPOCHS) throw invalid('checkpoint_response.epochs', `more than ${MAX_CHECKPOINT_EPOCHS}`);
      // Proofs of earlier epochs are signed by their own sets, which may be wider than the current one.
      const wide = { ...limits, validatorCount: Math.max(limits.validatorCount, WIRE_MAX_VALIDATORS) };
      return {
        type: 'checkpoint-response', requestId: checkView('checkpoint_response.request_id', r.requestId),
        epochs: r.epochs.map((e, i) => proofFromWire(`checkpoint_response.epochs[${i}]`, e, wide)),
        ...(r.tip ? { tip: {
          block: blockFromWire('checkpoint_response.tip.block', r.tip.block, wide, limits.hashBlock),
          qc: r.tip.qc ? qcFromWire('checkpoint_response.tip.qc', r.tip.qc, wide) : undefined,
        } } : {}),
      };
    }
    case 'historyRequest': {
      const r = body.value;
      return { type: 'history-request', requestId: checkView('history_request.request_id', r.requestId), belowHeight: checkView('history_request.below_height', r.belowHeight),
        max: Math.min(r.max || MAX_HISTORY_SUMMARIES, MAX_HISTORY_SUMMARIES) };
    }
    case 'historyResponse': {
      const r = body.value;
      if (r.summaries.length > MAX_HISTORY_SUMMARIES) throw invalid('history_response.summaries', `more than ${MAX_HISTORY_SUMMARIES}`);
      return { type: 'history-response', requestId: checkView('history_response.request_id', r.requestId),
        summaries: r.summaries.map((x, i) => summaryFromWire(`history_response.summaries[${i}]`, x, limits)) };
    }
    case 'batchRequest': {
      const r = body.value;
      if (r.digests.length > (limits.maxBlockTxs ?? Infinity)) throw invalid('batch_request.digests', `more than ${limits.maxBlockTxs}`);
      return { type: 'batch-request', requestId: checkView('batch_request.request_id', r.requestId), digests: r.digests.map((d, i) => checkHash(`batch_request.digests[${i}]`, d)) };
    }
    case 'batchResponse': {
      const r = body.value;
      if (r.batches.length > (limits.maxBlockTxs ?? Infinity)) throw invalid('batch_response.batches', `more than ${limits.maxBlockTxs}`);
      return { type: 'batch-response', requestId: checkView('batch_response.request_id', r.requestId), batches: r.batches.map((b) => b.txs) };
    }
    case 'reconfigForward': {
      // The transaction is decoded and checked (change, approvals) by the receiver against its own
      // epoch: here only that there is one.
      const r = body.value;
      if (r.tx.length === 0) throw invalid('reconfig_forward.tx', 'empty');
      return { type: 'reconfig-forward', epoch: checkView('reconfig_forward.epoch', r.epoch), tx: r.tx };
    }
    default: {
      const never: never = body;
      throw invalid('body', `unknown kind ${JSON.stringify(never)}`);
    }
  }
}

const partToWire = (p: BlockPart): BlockPartMsg => ('tx' in p
  ? { part: { $case: 'tx', value: p.tx } }
  : { part: { $case: 'batch', value: { digest: p.batch.digest, author: p.batch.author, count: p.batch.count, bytes: p.batch.bytes } } });

/** A proposal's parts: beside no transactions of the block's own, within its count and byte limits as they claim. */
function partsFromWire(parts: BlockPartMsg[], block: Block, limits: FrameLimits): BlockPart[] {
  if (block.txs.length > 0) throw invalid('proposal.parts', 'set beside the block\'s own transactions');
  const maxTxs = limits.maxBlockTxs ?? Infinity;
  const maxBytes = limits.maxBlockBytes ?? Infinity;
  if (parts.length > maxTxs) throw invalid('proposal.parts', `more than ${maxTxs}`);
  let txs = 0;
  let bytes = 0;
  const out = parts.map((m, i): BlockPart => {
    const field = `proposal.parts[${i}]`;
    const p = m.part;
    if (!p) throw invalid(field, 'empty');
    if (p.$case === 'tx') {
      txs++;
      bytes += p.value.length;
      return { tx: p.value };
    }
    const r = p.value;
    const ref: BatchRef = { digest: checkHash(`${field}.batch.digest`, r.digest), author: checkSender(`${field}.batch.author`, r.author, limits), count: r.count, bytes: r.bytes };
    if (ref.count === 0) throw invalid(`${field}.batch.count`, 'a batch holds at least one transaction');
    txs += ref.count;
    bytes += ref.bytes;
    return { batch: ref };
  });
  if (txs > maxTxs) throw invalid('proposal.parts', `${txs} transactions exceed the limit of ${maxTxs}`);
  if (bytes > maxBytes) throw invalid('proposal.parts', `${bytes} bytes exceed the limit of ${maxBytes}`);
  return out;
}

function proofFromWire(field: string, p: EpochChangeProofMsg | undefined, limits: FrameLimits): WireEpochProof {
  if (!p) throw invalid(field, 'missing');
  if (p.suffix.length > MAX_EPOCH_SUFFIX) throw invalid(`${field}.suffix`, `more than ${MAX_EPOCH_SUFFIX} headers`);
  return {
    last: blockFromWire(`${field}.last`, p.last, limits, limits.hashBlock),
    suffix: p.suffix.map((h, i) => headerFromWire(`${field}.suffix[${i}]`, h)),
    qc: qcFromWire(`${field}.qc`, p.qc, limits),
  };
}

/** A BlockSummary from the wire (or the block store): its header, and at most maxBlockTxs ids of 32 bytes. */
export function summaryFromWire(field: string, s: BlockSummaryMsg | undefined, limits: Pick<WireLimits, 'maxBlockTxs'>): BlockSummary {
  if (!s) throw invalid(field, 'missing');
  if (s.txIds.length > (limits.maxBlockTxs ?? Infinity)) throw invalid(`${field}.tx_ids`, `more than ${limits.maxBlockTxs}`);
  return { header: headerFromWire(`${field}.header`, s.header), txIds: s.txIds.map((t, i) => checkHash(`${field}.tx_ids[${i}]`, t)) };
}
