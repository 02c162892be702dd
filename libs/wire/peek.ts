// A glance at a ConsensusFrame before it is decoded: which kind it is and the numbers a cheap
// refusal needs — the view and epoch of a consensus message, the request id of a block response —
// found by skipping over the protobuf fields, never copying or decoding the rest (a proposal
// may carry megabytes of transactions; a stale one should cost a few dozen byte reads).
// Reads what the decoder would read: the last occurrence of a field wins, as in protobuf.
// Must never be used to accept a frame: a frame it cannot read is left to decodeFrame, which
// says what is wrong with it.

export type PeekKind = 'proposal' | 'vote' | 'new-view' | 'block-request' | 'block-response' | 'qc' | 'tx-batch'
  | 'checkpoint-request' | 'checkpoint-response' | 'history-request' | 'history-response' | 'batch-request' | 'batch-response'
  | 'reconfig-forward';

export interface FramePeek {
  kind: PeekKind;
  /** Proposal, vote and new-view: the message's view; qc: the QC's view. */
  view?: number;
  /** Consensus messages and a forwarded reconfiguration: the epoch (a proposal's is its block header's); views compare only within one. */
  epoch?: number;
  /** Responses (block, checkpoint, history): the request they answer. */
  requestId?: number;
}

/** ConsensusFrame body field numbers (proto/btcfed/v1/wire.proto). */
const BODY: Record<number, PeekKind> = { 2: 'proposal', 3: 'vote', 4: 'new-view', 5: 'block-request', 6: 'block-response', 7: 'qc', 8: 'tx-batch',
  9: 'checkpoint-request', 10: 'checkpoint-response', 11: 'history-request', 12: 'history-response', 13: 'batch-request', 14: 'batch-response',
  15: 'reconfig-forward' };

/** Kinds of which the peek reads nothing but the kind. */
const NOTHING_INSIDE: ReadonlySet<PeekKind> = new Set(['block-request', 'tx-batch', 'checkpoint-request', 'history-request', 'batch-request']);

interface Field { no: number; wire: number; value: number; start: number; end: number }

/** Iterates the top-level fields of bytes[start, end); undefined when they do not parse. */
function fields(bytes: Uint8Array, start: number, end: number): Field[] | undefined {
  const out: Field[] = [];
  let p = start;
  const varint = (): number | undefined => {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 10 && p < end; i++) {
      const b = bytes[p++]!;
      v += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return Number.isSafeInteger(v) ? v : undefined;
      scale *= 128;
    }
    return undefined;
  };
  while (p < end) {
    const tag = varint();
    if (tag === undefined) return undefined;
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    // Field 0 is not protobuf: the generated decoder stops the message there and reads on from
    // the middle of it, where this glance would not. Left to the decoder.
    if (no === 0) return undefined;
    switch (wire) {
      case 0: {
        const value = varint();
        if (value === undefined) return undefined;
        out.push({ no, wire, value, start: p, end: p });
        break;
      }
      case 1: p += 8; break;
      case 5: p += 4; break;
      case 2: {
        const len = varint();
        if (len === undefined || p + len > end) return undefined;
        out.push({ no, wire, value: len, start: p, end: p + len });
        p += len;
        break;
      }
      default: return undefined;
    }
    if (p > end) return undefined;
  }
  return out;
}

/** The last varint field numbered `no`, if any. */
function lastVarint(fs: readonly Field[], no: number): number | undefined {
  let v: number | undefined;
  for (const f of fs) if (f.no === no && f.wire === 0) v = f.value;
  return v;
}

/** The kind of a frame and its view or request id, or undefined when it does not parse. */
export function peekFrame(bytes: Uint8Array): FramePeek | undefined {
  const top = fields(bytes, 0, bytes.length);
  if (!top) return undefined;
  let body: Field | undefined;
  let bodies = 0;
  for (const f of top) if (f.wire === 2 && BODY[f.no] !== undefined) { body = f; bodies++; }
  // An honest frame has one body; with several, what the decoder makes of the earlier ones can
  // change what it reads of the last (a fuzzer found a frame where it did): left to the decoder.
  if (!body || bodies > 1) return undefined;
  const kind = BODY[body.no]!;
  // Requests and batches are refused by their kind alone: their fields (a batch's hundreds of
  // transactions) are not walked, and what is wrong inside them is the decoder's to say.
  if (NOTHING_INSIDE.has(kind)) return { kind };
  const inner = fields(bytes, body.start, body.end);
  if (!inner) return undefined;
  /** The last length-delimited field numbered `no` of `fs`, parsed, or undefined. */
  const sub = (fs: readonly Field[], no: number): Field[] | undefined => {
    let f: Field | undefined;
    for (const x of fs) if (x.no === no && x.wire === 2) f = x;
    return f ? fields(bytes, f.start, f.end) : undefined;
  };
  switch (kind) {
    case 'proposal': {
      // Proposal.block (2) → Block.header (1) → BlockHeader.epoch (9); absent parts are epoch 0.
      const header = sub(sub(inner, 2) ?? [], 1) ?? [];
      return { kind, view: lastVarint(inner, 1) ?? 0, epoch: lastVarint(header, 9) ?? 0 };
    }
    case 'new-view':
      return { kind, view: lastVarint(inner, 1) ?? 0, epoch: lastVarint(inner, 5) ?? 0 };
    case 'vote':
      return { kind, view: lastVarint(inner, 2) ?? 0, epoch: lastVarint(inner, 6) ?? 0 };
    case 'qc': {
      const epoch = lastVarint(inner, 3) ?? 0;
      let qc: Field | undefined;
      for (const f of inner) if (f.no === 1 && f.wire === 2) qc = f;
      if (!qc) return { kind, epoch };
      const q = fields(bytes, qc.start, qc.end);
      return q ? { kind, view: lastVarint(q, 2) ?? 0, epoch } : undefined;
    }
    case 'reconfig-forward':
      // ReconfigForward.epoch (1); its transaction is not walked.
      return { kind, epoch: lastVarint(inner, 1) ?? 0 };
    case 'block-response':
    case 'checkpoint-response':
    case 'history-response':
    case 'batch-response':
      return { kind, requestId: lastVarint(inner, 1) ?? 0 };
    default:
      return { kind };
  }
}
