// Equivocation evidence: both signed messages of a validator that contradicted itself, kept
// (bounded, newest last) for GetEvidence and announced on NATS by the caller.

import type { Equivocation } from '#libs/hotstuff/index.ts';
import { encodeFrame } from '#libs/wire/index.ts';
import type { Evidence } from '#libs/gen/btcfed/v1/consensus.pb.ts';

const KINDS = ['', 'prepare', 'pre-commit', 'commit'] as const;
const LIMIT = 10_000;

export class EvidenceLog {
  readonly #chainId: string;
  readonly #items: Evidence[] = [];

  constructor(chainId: string) {
    this.#chainId = chainId;
  }

  add(e: Equivocation, nowMs: number): Evidence {
    const item: Evidence = {
      offender: e.sender,
      view: e.view,
      kind: e.kind === 'proposal' ? 'proposal' : KINDS[e.kind],
      first: encodeFrame(this.#chainId, { type: 'consensus', message: e.first }),
      second: encodeFrame(this.#chainId, { type: 'consensus', message: e.second }),
      seenAtMs: nowMs,
    };
    this.#items.push(item);
    if (this.#items.length > LIMIT) this.#items.shift();
    return item;
  }

  since(fromView: number): Evidence[] {
    return this.#items.filter((e) => e.view >= fromView);
  }
}
