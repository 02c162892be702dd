// Equivocation evidence: both signed messages of a validator that contradicted itself, kept
// durably in the block store for GetEvidence and announced on NATS by the caller.
//
// A Byzantine member can equivocate again and again, so what is kept is bounded: one item per
// (offender, view, kind) — further conflicting messages for the same slot prove nothing new —
// at most PER_OFFENDER items per offender, and at most MAX_BYTES in all. Proposals are kept
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

const slotOf = (offender: number, view: number, kind: string) => `${offender}:${view}:${kind}`;

export class EvidenceLog {
  readonly #chainId: string;
  readonly #store: Store;
  readonly #slots = new Set<string>();
  readonly #perOffender = new Map<number, number>();
  #bytes = 0;
  #lastSeq = 0;

  constructor(chainId: string, store: Store) {
    this.#chainId = chainId;
    this.#store = store;
    // Bounded by the caps above, so the index of what is kept fits in memory.
    for (const { seq, bytes } of store.evidence()) {
      const e = Evidence.decode(bytes);
      this.#note(e.offender, slotOf(e.offender, e.view, e.kind), bytes.length);
      this.#lastSeq = Math.max(this.#lastSeq, seq);
    }
  }

  get count(): number { return this.#slots.size; }

  /** Keeps the evidence unless its slot is known or a cap is reached; `stored` resolves once it is on disk. */
  add(e: Equivocation, nowMs: number): EvidenceOutcome {
    const kind = e.kind === 'proposal' ? 'proposal' : KINDS[e.kind];
    const slot = slotOf(e.sender, e.view, kind);
    if (this.#slots.has(slot)) return { kept: false, reason: 'duplicate' };
    if ((this.#perOffender.get(e.sender) ?? 0) >= EVIDENCE_PER_OFFENDER) return { kept: false, reason: 'offender_cap' };
    const item: Evidence = {
      offender: e.sender, view: e.view, kind,
      first: this.#frame(e.first), second: this.#frame(e.second),
      seenAtMs: nowMs, seq: this.#lastSeq + 1,
    };
    const bytes = Evidence.encode(item).finish();
    if (this.#bytes + bytes.length > EVIDENCE_MAX_BYTES) return { kept: false, reason: 'disk_cap' };
    this.#lastSeq = item.seq;
    this.#note(e.sender, slot, bytes.length);
    return { kept: true, item, stored: this.#store.addEvidence(item.seq, bytes) };
  }

  /** Evidence of views ≥ fromView stored after `afterSeq`, oldest first, one page at a time. */
  page(fromView: number, afterSeq: number, limit: number): { evidence: Evidence[]; more: boolean } {
    const max = limit > 0 ? Math.min(limit, EVIDENCE_PAGE) : EVIDENCE_PAGE;
    const out: Evidence[] = [];
    for (const { seq, bytes } of this.#store.evidence(afterSeq)) {
      const e = Evidence.decode(bytes);
      if (e.view < fromView) continue;
      if (out.length === max) return { evidence: out, more: true };
      out.push({ ...e, seq });
    }
    return { evidence: out, more: false };
  }

  #note(offender: number, slot: string, bytes: number): void {
    this.#slots.add(slot);
    this.#perOffender.set(offender, (this.#perOffender.get(offender) ?? 0) + 1);
    this.#bytes += bytes;
  }

  #frame(m: Proposal | Vote): Uint8Array {
    const message = m.type === 'proposal' ? { ...m, block: { ...m.block, txs: [] } } : m;
    return encodeFrame(this.#chainId, { type: 'consensus', message });
  }
}
