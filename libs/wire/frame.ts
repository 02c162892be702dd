// ConsensusFrame: the unit the gateway carries between members. Decoding checks the cheapest first:
// size limit first, then protobuf decoding, then field checks (convert.ts); signatures and
// protocol rules come after, in the consensus service and the engine.

import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { Block, BlockHeader, ConsensusMessage, Hash, QuorumCert } from '#libs/hotstuff/index.ts';
import { ConsensusFrame } from '#libs/gen/btcfed/v1/wire.pb.ts';
import {
  blockFromWire, blockToWire, checkHash, checkPhase, checkSender, checkSignature, checkView, headerFromWire, headerToWire, invalid,
  qcFromWire, qcToWire, type WireLimits,
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

export type Frame =
  | { type: 'consensus'; message: ConsensusMessage }
  | { type: 'block-request'; requestId: number; hashes: Hash[]; fromHeight: number; maxBlocks: number }
  | { type: 'block-response'; requestId: number; blocks: CertifiedBlock[]; epochEnd?: EpochEnd | undefined; oldestHeight?: number | undefined }
  | { type: 'tx-batch'; txs: Uint8Array[] };

export function encodeFrame(chainId: string, frame: Frame): Uint8Array {
  return ConsensusFrame.encode({ chainId, body: toBody(frame) }).finish();
}

function toBody(frame: Frame): ConsensusFrame['body'] {
  switch (frame.type) {
    case 'consensus': {
      const m = frame.message;
      switch (m.type) {
        case 'proposal':
          return { $case: 'proposal', value: { view: m.view, block: blockToWire(m.block), justify: qcToWire(m.justify), sender: m.sender, signature: m.signature } };
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
      return { type: 'consensus', message: {
        type: 'proposal', view: checkView('proposal.view', p.view),
        block: blockFromWire('proposal.block', p.block, limits, limits.hashBlock),
        justify: qcFromWire('proposal.justify', p.justify, limits),
        sender: checkSender('proposal.sender', p.sender, limits),
        signature: checkSignature('proposal.signature', p.signature, limits),
      } };
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
    default: {
      const never: never = body;
      throw invalid('body', `unknown kind ${JSON.stringify(never)}`);
    }
  }
}
