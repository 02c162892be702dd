// Equivocation evidence: both signed messages of a validator that contradicted itself, kept
// durably in the block store for GetEvidence and announced on NATS by the caller.
//
// A Byzantine member can equivocate again and again, so what is kept is bounded: one item per
// (epoch, offender, view, kind) — further conflicting messages for the same slot prove nothing new
// (views start again at every epoch, so the epoch is part of the slot) — at most PER_OFFENDER
// items per offender (by member name, which an index is not across epochs), and at most MAX_BYTES
// in all. Each item names its epoch and the offender's name in that epoch's set. Proposals are kept
// without their transactions (the signature covers the block hash, which is over the header
// alone), so an item is a few signatures, not megabytes. What is not kept is counted by reason.

import type { Equivocation, Proposal, Vote } from '#libs/hotstuff/index.ts';
import { encodeFrame } from '#libs/wire/index.ts';
import { Evidence } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import type { BlockStore } from './block-store.ts';

const KINDS = ['', 'prepare', 'pre-commit', 'commit'] as const;
export const EVIDENCE_PER_OFFENDER = 32;
export const EVIDENCE_MAX_BYTES = 64 << 20;
export const EVIDENCE_PAGE = 64;

export type EvidenceOutcome =
  | { kept: true; item: Evidence; stored: Promise<void> }
  | { kept: false; reason: 'duplicate' | 'offender_cap' | 'disk_cap' };

type Store = Pick<BlockStore, 'addEvidence' | 'evidence'>;

const slotOf = (epoch: number, offender: number, view: number, kind: string) => `${epoch}:${offender}:${view}:${kind}`;
/** Whom the per-offender cap counts: the member's name, or its index where the name is not known. */
const offenderOf = (name: string, index: number) => name || `#${index}`;
/** The epoch both messages belong to (a vote names it; a proposal's block does). */
const epochOf = (m: Proposal | Vote) => (m.type === 'vote' ? m.epoch : m.block.header.epoch);

/** The member name of validator `index` in epoch `epoch`'s set, where known. */
export type NameOf = (epoch: number, index: number) => string | undefined;

export class EvidenceLog {
  readonly #chainId: string;
  readonly #store: Store;
  readonly #nameOf: NameOf;
  readonly #slots = new Set<string>();
  readonly #perOffender = new Map<string, number>();
  #bytes = 0;
  #lastSeq = 0;

  constructor(chainId: string, store: Store, nameOf: NameOf = () => undefined) {
    this.#chainId = chainId;
    this.#store = store;
    this.#nameOf = nameOf;
    // Bounded by the caps above, so the index of what is kept fits in memory.
    for (const { seq, bytes } of store.evidence()) {
      const e = Evidence.decode(bytes);
      this.#note(offenderOf(e.offenderName, e.offender), slotOf(e.epoch, e.offender, e.view, e.kind), bytes.length);
      this.#lastSeq = Math.max(this.#lastSeq, seq);
    }
  }

  get count(): number { return this.#slots.size; }

  /** Keeps the evidence unless its slot is known or a cap is reached; `stored` resolves once it is on disk. */
  add(e: Equivocation, nowMs: number): EvidenceOutcome {
    const kind = e.kind === 'proposal' ? 'proposal' : KINDS[e.kind];
    const epoch = epochOf(e.first);
    const slot = slotOf(epoch, e.sender, e.view, kind);
    if (this.#slots.has(slot)) return { kept: false, reason: 'duplicate' };
    const name = this.#nameOf(epoch, e.sender) ?? '';
    const offender = offenderOf(name, e.sender);
    if ((this.#perOffender.get(offender) ?? 0) >= EVIDENCE_PER_OFFENDER) return { kept: false, reason: 'offender_cap' };
    const item: Evidence = {
      offender: e.sender, view: e.view, kind,
      first: this.#frame(e.first), second: this.#frame(e.second),
      seenAtMs: nowMs, seq: this.#lastSeq + 1, epoch, offenderName: name,
    };
    const bytes = Evidence.encode(item).finish();
    if (this.#bytes + bytes.length > EVIDENCE_MAX_BYTES) return { kept: false, reason: 'disk_cap' };
    this.#lastSeq = item.seq;
    this.#note(offender, slot, bytes.length);
    return { kept: true, item, stored: this.#store.addEvidence(item.seq, bytes) };
  }

  /** Evidence from (fromEpoch, fromView) on, stored after `afterSeq`, oldest first, one page at a time. */
  page(from: { epoch: number; view: number }, afterSeq: number, limit: number): { evidence: Evidence[]; more: boolean } {
    const max = limit > 0 ? Math.min(limit, EVIDENCE_PAGE) : EVIDENCE_PAGE;
    const out: Evidence[] = [];
    for (const { seq, bytes } of this.#store.evidence(afterSeq)) {
      const e = Evidence.decode(bytes);
      if (e.epoch < from.epoch || (e.epoch === from.epoch && e.view < from.view)) continue;
      if (out.length === max) return { evidence: out, more: true };
      out.push({ ...e, seq });
    }
    return { evidence: out, more: false };
  }

  #note(offender: string, slot: string, bytes: number): void {
    this.#slots.add(slot);
    this.#perOffender.set(offender, (this.#perOffender.get(offender) ?? 0) + 1);
    this.#bytes += bytes;
  }

  #frame(m: Proposal | Vote): Uint8Array {
    const message = m.type === 'proposal' ? { ...m, block: { ...m.block, txs: [] } } : m;
    return encodeFrame(this.#chainId, { type: 'consensus', message });
  }
}
