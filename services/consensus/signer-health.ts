// Whether this member's signer answers, from the outcome of the requests consensus sends it (a
// NEW-VIEW every view at the least, so a dead signer shows within a view or its timer). A refusal
// is an answer; a request that could not reach the signer or got no answer in time (UNAVAILABLE,
// DEADLINE_EXCEEDED) is not. Readiness (/readyz, the gRPC health of ConsensusService) and the
// consensus_signer_reachable_state gauge say so: a member whose signer is gone takes no part in
// consensus, whatever else is up. Pure bookkeeping on an injected clock.
// Must never call a refusal a dead signer, nor a dead signer ready.

import * as grpc from '@grpc/grpc-js';
import { errorMessage } from '#libs/errors/index.ts';

const UNANSWERED = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]);

/** Did the signer not answer (rather than answer with a refusal)? */
export function unanswered(err: unknown): boolean {
  const details = (err as { details?: unknown } | undefined)?.details;
  const code = details && typeof details === 'object' ? (details as { grpcCode?: unknown }).grpcCode : undefined;
  return typeof code === 'number' && UNANSWERED.has(code);
}

export class SignerHealth {
  readonly #now: () => number;
  readonly #onChange: (reachable: boolean) => void;
  #failingSince: number | undefined;
  #lastError = '';

  constructor(now: () => number, onChange: (reachable: boolean) => void = () => undefined) {
    this.#now = now;
    this.#onChange = onChange;
  }

  /** The signer answered (a signature or a refusal). */
  answered(): void {
    if (this.#failingSince === undefined) return;
    this.#failingSince = undefined;
    this.#onChange(true);
  }

  /** A request failed: counts against the signer only when it did not answer. */
  failed(err: unknown): void {
    if (!unanswered(err)) { this.answered(); return; }
    this.#lastError = errorMessage(err);
    if (this.#failingSince !== undefined) return;
    this.#failingSince = this.#now();
    this.#onChange(false);
  }

  /** Why this member cannot sign now, or undefined while its signer answers. */
  get problem(): string | undefined {
    if (this.#failingSince === undefined) return undefined;
    return `the signer does not answer (for ${((this.#now() - this.#failingSince) / 1000).toFixed(0)} s): ${this.#lastError}`;
  }
}
