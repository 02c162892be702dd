// Equivocation evidence: both signed messages of a validator that contradicted itself, kept
// durably in the block store for GetEvidence and announced on NATS by the caller.

import type { Equivocation } from '#libs/hotstuff/index.ts';
import { encodeFrame } from '#libs/wire/index.ts';
import { Evidence } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import type { BlockStore } from './block-store.ts';

const KINDS = ['', 'prepare', 'pre-commit', 'commit'] as const;

export class EvidenceLog {
  readonly #chainId: string;
  readonly #store: Pick<BlockStore, 'addEvidence' | 'evidence'>;

  constructor(chainId: string, store: Pick<BlockStore, 'addEvidence' | 'evidence'>) {
    this.#chainId = chainId;
    this.#store = store;
  }

  /** Records the evidence (durably; the promise resolves once it is on disk) and returns it. */
  add(e: Equivocation, nowMs: number): { item: Evidence; stored: Promise<void> } {
    const item: Evidence = {
      offender: e.sender,
      view: e.view,
      kind: e.kind === 'proposal' ? 'proposal' : KINDS[e.kind],
      first: encodeFrame(this.#chainId, { type: 'consensus', message: e.first }),
      second: encodeFrame(this.#chainId, { type: 'consensus', message: e.second }),
      seenAtMs: nowMs,
    };
    return { item, stored: this.#store.addEvidence(Evidence.encode(item).finish()) };
  }

  since(fromView: number): Evidence[] {
    return this.#store.evidence().map((b) => Evidence.decode(b)).filter((e) => e.view >= fromView);
  }
}
