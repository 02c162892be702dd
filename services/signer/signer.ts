// The signer itself: one request at a time (a serial queue, so concurrent identical or
// conflicting requests can never yield two signatures for one slot), rules from rules.ts,
// QC signatures checked on the libuv pool, and the order that makes it safe:
//   decide → sign → safety state durable on disk → journal line fsync'd → reply.
// Any failure to persist poisons the signer: it refuses everything until restarted from disk —
// except a token that does not answer while the state is authenticated (custody pkcs11): nothing
// was returned and the state file is a valid record, so it refuses each request (counted in
// signer_custody_failures_total) and signs again once the token answers.
// It signs for one epoch, the newest it has been shown the proof of (epochs.ts), and only while
// its key is in that epoch's set: a removed or rotated-out key signs nothing after its epoch ended,
// a key joining (signer.yaml standby) nothing before the epoch that adds it.
// Must never return a signature whose slot is not yet durable, nor sign the same slot twice, nor
// sign for an epoch other than the newest whose proof it verified.

import type { Logger } from 'pino';
import { FedError, errorMessage, isFedError } from '#libs/errors/index.ts';
import { noopMetrics, type Metrics } from '#libs/metrics/index.ts';
import { reconfigSigningBytes, sha256Hex, toHex, type SlhDsa } from '#libs/crypto/index.ts';
import type { BlockHeader, SignRequest } from '#libs/hotstuff/index.ts';
import { SerialQueue } from '#libs/files/index.ts';
import { nextValidatorSet, reconfigId, type Reconfiguration, type ValidatorSet } from '#libs/validators/index.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import type { SignerEpochs } from './epochs.ts';
import type { Journal, JournalRecord } from './journal.ts';
import type { QcChecker } from './qc-check.ts';
import { admit, applySigned, decide, epochSafety, evidenceQc, slotKey, slotOf, type AdmitContext, type Decision, type Rule, type SignerSafety } from './rules.ts';
import { isTokenError, type SafetyStore } from './state-file.ts';
import { signerMetrics } from './signer-metrics.ts';

export interface SignResult {
  signature: Uint8Array;
  /** The request was identical to one signed before: this is the stored signature. */
  replayed: boolean;
}

/** An operator's approval of a reconfiguration (ApproveReconfiguration). */
export interface Approved {
  signature: Uint8Array;
  /** This signer's index in the change's epoch. */
  validatorIndex: number;
  /** SHA-256 of the change's bytes, hex. */
  id: string;
}

export interface SignerIdentity {
  publicKey: Uint8Array;
  paramSet: string;
  /** This signer's index in `epoch`'s set (0 when it is not seated). */
  validatorIndex: number;
  validatorCount: number;
  chainId: string;
  member: string;
  /** The newest epoch this signer has been shown: the only one it signs for. */
  epoch: number;
  /** Whether its key is in that epoch's set: when not, it signs nothing. */
  seated: boolean;
}

/** The answer to AdvanceEpoch. */
export interface EpochAdvanced {
  /** The signer's epoch now. */
  epoch: number;
  /** The proof was of an epoch this signer had already left: nothing changed. */
  already: boolean;
  seated: boolean;
  validatorIndex: number;
  validatorCount: number;
}

/** What the consensus driver (and the shared test suite) talks to: in-process or over gRPC. */
export interface Signer {
  identity(): Promise<SignerIdentity>;
  /** Throws FedError SIGNER_REFUSED (details.rule names the rule) or SIGNER_BAD_REQUEST. */
  sign(request: SignRequest): Promise<SignResult>;
  close(): Promise<void>;
}

/** A refusal as logged, journaled, counted and published. */
export interface Refusal {
  rule: Rule;
  reason: string;
  kind: SignRequest['kind'];
  view: number;
  phase: number;
  client: string;
}

export interface LocalSignerDeps {
  slh: SlhDsa;
  secretKey: Uint8Array;
  store: SafetyStore;
  journal: Journal;
  /** The epochs shown so far (the newest is the one signed for), saved before they are used. */
  epochs: SignerEpochs;
  /** The QC checker of one epoch's set, whose root QC (view 0, no signatures) is on `root`. */
  qcFor(validators: ValidatorSet, root: Uint8Array): QcChecker;
  hashBlock: (h: BlockHeader) => Uint8Array;
  /** signer.yaml max_view_jump: how far beyond its QC's view a request may go. */
  maxViewJump: number;
  log: Logger;
  metrics?: Metrics;
  /** Told of every refusal after it is journaled (events, alerting). Must not throw. */
  onRefusal?: (r: Refusal) => void;
  /** Run once by close(), after the last request: releases what the opener holds (the journal). */
  release?: () => Promise<void>;
}

export interface LocalSignerOptions {
  /** Who the signer is; its seat (index, count, epoch) follows `validators`. */
  identity: Omit<SignerIdentity, 'validatorIndex' | 'validatorCount' | 'epoch' | 'seated'>;
  /** The newest epoch's set with this signer as self when it is in it: the leader rule comes from it. */
  validators: ValidatorSet;
  /** The safety state, of `validators`' epoch. */
  state: SignerSafety;
}

/** The epoch the signer signs for: its set, its seat in it, and the QC checker over its keys. */
interface Seat { set: ValidatorSet; self: number | undefined; qc: QcChecker }

export function refusalError(rule: Rule, reason: string, details: Record<string, unknown> = {}): FedError {
  const code = rule === 'malformed' ? 'SIGNER_BAD_REQUEST' : 'SIGNER_REFUSED';
  return new FedError(code, `rule=${rule}: ${reason}`, { ...details, rule });
}

export class LocalSigner implements Signer {
  readonly #who: LocalSignerOptions['identity'];
  #seat: Seat;
  readonly #deps: LocalSignerDeps;
  readonly #queue = new SerialQueue();
  readonly #m;
  #state: SignerSafety;
  #failed: unknown = undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(opts: LocalSignerOptions, deps: LocalSignerDeps) {
    if (opts.state.epoch !== opts.validators.epoch) throw new FedError('SIGNER_STATE_MISMATCH', `the safety state is of epoch ${opts.state.epoch}, the validator set of epoch ${opts.validators.epoch}`);
    this.#who = opts.identity;
    this.#seat = { set: opts.validators, self: opts.validators.selfIndex, qc: deps.qcFor(opts.validators, deps.epochs.root) };
    this.#state = opts.state;
    this.#deps = deps;
    this.#m = signerMetrics(deps.metrics ?? noopMetrics);
    this.#m.observe(this.#state, this.#seat.self !== undefined);
  }

  /** The state in force (a copy-on-write value: never mutated in place). */
  get state(): SignerSafety {
    return this.#state;
  }

  async identity(): Promise<SignerIdentity> {
    return this.identityNow;
  }

  get identityNow(): SignerIdentity {
    const { set, self } = this.#seat;
    return { ...this.#who, validatorIndex: self ?? 0, validatorCount: set.n, epoch: set.epoch, seated: self !== undefined };
  }

  sign(request: SignRequest, client = 'in-process'): Promise<SignResult> {
    return this.#queue.run(() => this.#handle(request, client));
  }

  /** Waits for the requests already queued, refuses later ones, then wipes the key. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#queue.run(async () => { this.#closed = true; });
      await this.#deps.release?.();
      this.#deps.secretKey.fill(0);
    })();
    return this.#closing;
  }

  /**
   * An operator's approval of `change`: its canonical bytes signed under their own domain tag,
   * only for this signer's chain and epoch and only when the change is valid against this
   * signer's own validator set (libs/validators nextValidatorSet). Stateless: no slot, no lock —
   * consensus commits at most one change per epoch, and a change for a past epoch is stale there.
   * Journaled (signed or refused with the rule) before the reply, like every request.
   */
  approve(change: Reconfiguration, client: string): Promise<Approved> {
    return this.#queue.run(async () => {
      this.#assertServing();
      const v = this.#seat.set;
      const id = reconfigId(change);
      const base = { type: 'approval', epoch: change.epoch, id, ops: change.ops.length, client };
      const refuse = async (rule: Rule, reason: string): Promise<never> => {
        await this.#journal({ ...base, decision: 'refused', rule, reason });
        this.#m.requests.inc({ kind: 'approval', decision: 'refused' });
        this.#m.refusals.inc({ rule });
        this.#deps.log.warn({ security: true, event: 'signer.approval_refused', rule, reason, id, client }, 'reconfiguration approval refused');
        throw refusalError(rule, reason, { kind: 'approval', id });
      };
      if (change.chainId !== this.#who.chainId) return refuse('chain-id', `the change is for chain ${JSON.stringify(change.chainId)}, this signer's is ${JSON.stringify(this.#who.chainId)}`);
      if (change.epoch !== v.epoch) return refuse('epoch', `the change ends epoch ${change.epoch}, this signer's validator set is epoch ${v.epoch}`);
      if (this.#seat.self === undefined) return refuse('epoch', this.#unseated());
      try {
        nextValidatorSet(v, change, { chainId: this.#who.chainId, publicKeyBytes: this.#deps.slh.publicKeyBytes });
      } catch (err) {
        return refuse('reconfig', errorMessage(err));
      }
      // Not #custodyUp: with sealed custody this signature never asked the token (the state did).
      const signature = await this.#signWithKey(reconfigSigningBytes(change), 'approval');
      await this.#journal({ ...base, decision: 'signed', sig: sha256Hex(signature) });
      this.#m.requests.inc({ kind: 'approval', decision: 'signed' });
      this.#deps.log.warn({ security: true, event: 'signer.approved', id, epoch: change.epoch, ops: change.ops, client }, 'reconfiguration approved');
      return { signature, validatorIndex: this.#seat.self, id };
    });
  }

  /**
   * Shows the signer the proof that its epoch ended (SignerEpochs.advance checks it against the
   * epoch's keys). On success the history is saved, then the next epoch's marks (nothing signed,
   * locked on the block that ended the epoch), then the journal line, before the reply; from then
   * on the signer signs only for the new epoch, and only if its key is in the new set. A proof of an
   * epoch already left changes nothing; one that does not verify is refused (rule epoch-proof).
   */
  advanceEpoch(proof: EpochChangeProof, client: string): Promise<EpochAdvanced> {
    return this.#queue.run(async () => {
      this.#assertServing();
      const from = this.#seat.set.epoch;
      let r;
      try {
        r = await this.#deps.epochs.advance(proof, this.#deps.slh);
      } catch (err) {
        this.#poison(err, `saving the epoch history ${this.#deps.epochs.file}`);
      }
      if (r.kind === 'refused') {
        await this.#journal({ type: 'epoch', decision: 'refused', epoch: from, proofEpoch: proof.last.header.epoch, rule: 'epoch-proof', reason: r.reason, client });
        this.#m.requests.inc({ kind: 'epoch', decision: 'refused' });
        this.#m.refusals.inc({ rule: 'epoch-proof' });
        this.#deps.log.warn({ security: true, event: 'signer.epoch_refused', epoch: from, reason: r.reason, client }, 'epoch-change proof refused');
        throw refusalError('epoch-proof', r.reason, { kind: 'epoch', epoch: from });
      }
      if (r.kind === 'known') {
        this.#m.requests.inc({ kind: 'epoch', decision: 'known' });
        return { ...this.#seatAnswer(), already: true };
      }
      const set = r.set.withSelf({ publicKey: this.#who.publicKey }, { optional: true });
      const next = epochSafety(this.#state, set.epoch, r.ended.root);
      try {
        await this.#deps.store.save(next);
      } catch (err) {
        this.#poison(err, 'saving the safety state of the new epoch');
      }
      this.#state = next;
      this.#seat = { set, self: set.selfIndex, qc: this.#deps.qcFor(set, r.ended.root) };
      this.#m.observe(next, set.selfIndex !== undefined);
      const answer = this.#seatAnswer();
      await this.#journal({ type: 'epoch', decision: 'advanced', epoch: set.epoch, height: r.ended.height, root: toHex(r.ended.root), seated: answer.seated, validatorIndex: answer.validatorIndex, client });
      this.#m.requests.inc({ kind: 'epoch', decision: 'advanced' });
      this.#deps.log.warn({ security: true, event: 'signer.epoch_advanced', from, epoch: set.epoch, height: r.ended.height, seated: answer.seated, validatorIndex: answer.validatorIndex, validators: set.n, client },
        answer.seated ? 'epoch advanced: signing for the new epoch only' : 'epoch advanced: this key is not in the new set and signs nothing more');
      return { ...answer, already: false };
    });
  }

  #seatAnswer(): Omit<EpochAdvanced, 'already'> {
    const { set, self } = this.#seat;
    return { epoch: set.epoch, seated: self !== undefined, validatorIndex: self ?? 0, validatorCount: set.n };
  }

  #unseated(): string {
    return `this signer's key is not in the validator set of epoch ${this.#seat.set.epoch}, the newest it has been shown (removed or rotated out, or not yet added: show it the epoch-change proofs with AdvanceEpoch)`;
  }

  /**
   * A request that did not even decode (gRPC): journaled, counted and published like any
   * refusal, then thrown as SIGNER_BAD_REQUEST.
   */
  refuseMalformed(kind: SignRequest['kind'], view: number, reason: string, client: string): Promise<never> {
    const slot = { kind, view: Number.isSafeInteger(view) ? view : 0, phase: 0 as const };
    return this.#queue.run(() => this.#carryOut(kind, { type: 'refuse', slot, rule: 'malformed', reason }, client) as Promise<never>);
  }

  /** Closed, or poisoned by a storage failure: nothing more is signed. */
  #assertServing(): void {
    if (this.#closed) throw new FedError('SIGNER_UNAVAILABLE', 'the signer is shutting down');
    if (this.#failed !== undefined) {
      throw new FedError('SIGNER_UNAVAILABLE', `the signer stopped signing after a storage failure (${errorMessage(this.#failed)}); restart it`);
    }
  }

  async #handle(req: SignRequest, client: string): Promise<SignResult> {
    this.#assertServing();
    const started = performance.now();
    const unseated = this.#seat.self === undefined ? { type: 'refuse' as const, slot: slotOf(req), rule: 'epoch' as const, reason: this.#unseated() } : undefined;
    const decision = unseated ?? admit(this.#state, req, this.#admitCtx()) ?? (await this.#decide(req));
    const result = await this.#carryOut(req.kind, decision, client);
    this.#m.duration.observe({ kind: req.kind }, (performance.now() - started) / 1000);
    return result;
  }

  #admitCtx(): AdmitContext {
    const { set, self } = this.#seat;
    return { chainId: this.#who.chainId, epoch: set.epoch, self: self!, mayLead: (view, who) => set.mayLead(view, who), maxViewJump: this.#deps.maxViewJump };
  }

  async #decide(req: SignRequest): Promise<Decision> {
    const qc = evidenceQc(req);
    const verdict = await this.#seat.qc.check(qc);
    return decide(this.#state, req, {
      ...this.#admitCtx(),
      hashBlock: this.#deps.hashBlock,
      qcError: (q) => (q === qc ? verdict : 'QC was not checked'),
    });
  }

  async #carryOut(kind: SignRequest['kind'], d: Decision, client: string): Promise<SignResult> {
    const base = { type: 'request', epoch: this.#seat.set.epoch, kind: d.slot.kind, view: d.slot.view, phase: d.slot.phase, client };
    switch (d.type) {
      case 'refuse': {
        await this.#journal({ ...base, decision: 'refused', rule: d.rule, reason: d.reason });
        this.#m.requests.inc({ kind, decision: 'refused' });
        this.#m.refusals.inc({ rule: d.rule });
        const r: Refusal = { rule: d.rule, reason: d.reason, kind: d.slot.kind, view: d.slot.view, phase: d.slot.phase, client };
        this.#deps.log.warn({ security: true, event: 'signer.refused', ...r, slot: slotKey(d.slot) }, 'signing refused');
        this.#deps.onRefusal?.(r);
        throw refusalError(d.rule, d.reason, { kind: r.kind, view: r.view, phase: r.phase });
      }
      case 'replay':
        await this.#journal({ ...base, decision: 'replayed', block: d.blockHash, digest: d.digest, sig: sha256Hex(d.signature) });
        this.#m.requests.inc({ kind, decision: 'replayed' });
        this.#deps.log.info({ slot: slotKey(d.slot), client }, 'identical request: stored signature returned');
        return { signature: d.signature, replayed: true };
      case 'sign': {
        const signature = await this.#signWithKey(d.message, kind);
        const next = applySigned(this.#state, d, signature);
        try {
          await this.#deps.store.save(next);
        } catch (err) {
          if (isFedError(err, 'SIGNER_CUSTODY_UNAVAILABLE')) this.#custodyDown(err, kind);
          this.#poison(err, 'saving the safety state');
        }
        this.#custodyUp();
        this.#state = next;
        this.#m.observe(next, true);
        await this.#journal({ ...base, decision: 'signed', block: d.blockHash, digest: d.digest, sig: sha256Hex(signature) });
        this.#m.requests.inc({ kind, decision: 'signed' });
        this.#deps.log.debug({ slot: slotKey(d.slot), block: d.blockHash.slice(0, 16), client }, 'signed');
        return { signature, replayed: false };
      }
    }
  }

  async #journal(record: JournalRecord): Promise<void> {
    try {
      await this.#deps.journal.append(record);
    } catch (err) {
      this.#poison(err, 'appending to the journal');
    }
  }

  /**
   * The key signs. With native custody the token signs, and a token that fails (isTokenError:
   * SIGNER_TOKEN_FAILED, a PIN it refuses on reconnecting, …) is custody down like a state it cannot authenticate: nothing was signed,
   * the state is untouched, and the next request tries the token again.
   */
  async #signWithKey(message: Uint8Array, kind: SignRequest['kind'] | 'approval'): Promise<Uint8Array> {
    try {
      return await this.#deps.slh.sign(this.#deps.secretKey, message);
    } catch (err) {
      if (isTokenError(err)) this.#custodyDown(err, kind);
      throw err;
    }
  }

  #custodyUp(): void {
    if (this.#m.custodyDown) this.#deps.log.warn({ security: true, event: 'signer.custody_recovered' }, 'the token answers again: signing');
    this.#m.custody(true);
  }

  /**
   * The token did not answer while signing or authenticating the state: this signature never
   * leaves, the state in force stays (the file holds a valid record at most one ahead of it, whose
   * signature was never returned either), and the next request tries the token again.
   */
  #custodyDown(err: FedError, kind: SignRequest['kind'] | 'approval'): never {
    this.#m.custody(false);
    this.#m.requests.inc({ kind, decision: 'unavailable' });
    this.#deps.log.error({ security: true, event: 'signer.custody_unavailable', err: err.message }, 'the token does not answer: refusing to sign until it does');
    throw new FedError('SIGNER_UNAVAILABLE', `no signature: ${err.message}`, { custody: true }, { cause: err });
  }

  #poison(err: unknown, what: string): never {
    this.#failed = err;
    this.#deps.log.error({ err: errorMessage(err) }, `${what} failed: the signer refuses all requests until restarted`);
    throw new FedError('SIGNER_STORAGE_FAILED', `${what} failed; no signature was returned`, {}, { cause: err });
  }
}
