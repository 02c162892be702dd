// Signature checks for everything that reaches the engine. Messages are verified here,
// asynchronously and in parallel on the thread pool, BEFORE the engine sees them; what verified
// is remembered, so the engine's synchronous `deps.verify` is a cache hit and no signature is
// checked twice. A message or QC with a bad signature never reaches the engine.
// Cheap before expensive: a QC's shape (quorum of distinct signers in the set) is checked before
// any signature; its signatures are verified a few at a time and the first failure ends the
// check; a signature that failed is remembered, so a replayed forgery costs a hash, not a verify.

import { sha256, toHex, type SlhDsa } from '#libs/crypto/index.ts';
import { availableParallelism } from 'node:os';
import { isGenesisQC, isQcRef, qcStructureError, quorumSize, type ConsensusMessage, type Hash, type QuorumCert, type SignedMessage, type SignRequest } from '#libs/hotstuff/index.ts';
import { signingBytesOf, signingBytesOfRequest } from '#libs/wire/index.ts';

const CACHE_LIMIT = 65_536;
const FAILED_LIMIT = 4096;
/** Signatures of one QC verified at once: enough to keep the cores busy, few enough to stop early. */
const QC_BATCH = Math.max(2, availableParallelism());

export interface VerifierOptions {
  chainId: string;
  /** Public keys by validator index (raw FIPS 205 bytes). */
  publicKeys: readonly Uint8Array[];
  dsa: SlhDsa;
  genesisHash: Hash;
}

export type VerifyResult = { ok: true } | { ok: false; what: string; sender: number };

export class SignatureVerifier {
  readonly #opts: VerifierOptions;
  readonly #verified = new Set<string>();
  readonly #failed = new Set<string>();
  #hits = 0;
  #misses = 0;
  /** SLH-DSA verifications actually run (cache misses of the async path). */
  #verifications = 0;

  constructor(opts: VerifierOptions) {
    this.#opts = opts;
  }

  get stats(): { cacheHits: number; cacheMisses: number; cached: number; verifications: number } {
    return { cacheHits: this.#hits, cacheMisses: this.#misses, cached: this.#verified.size, verifications: this.#verifications };
  }

  #key(m: SignedMessage, bytes: Uint8Array): string {
    return toHex(sha256(bytes, new Uint8Array([m.sender >> 8, m.sender & 0xff]), m.signature));
  }

  async #check(m: SignedMessage): Promise<boolean> {
    const pk = this.#opts.publicKeys[m.sender];
    if (!pk) return false;
    const bytes = signingBytesOf(this.#opts.chainId, m);
    const key = this.#key(m, bytes);
    if (this.#verified.has(key)) return true;
    if (this.#failed.has(key)) return false;
    this.#verifications++;
    const ok = await this.#opts.dsa.verify(pk, bytes, m.signature);
    if (ok) this.#remember(key);
    else this.#rememberFailure(key);
    return ok;
  }

  /** `epoch`: the epoch of the message that carries the QC (its votes are of that epoch). */
  async #checkQc(qc: QuorumCert, epoch: number): Promise<VerifyResult> {
    if (isGenesisQC(qc, this.#opts.genesisHash)) return { ok: true };
    const what = `qc(${qc.phase},${qc.view}) vote`;
    const n = this.#opts.publicKeys.length;
    // Shape before any signature: a quorum of distinct signers of this set (one check, libs/hotstuff qc.ts).
    const shape = qcStructureError(qc, n, quorumSize(n));
    if (shape) return { ok: false, what: `${what}: ${shape}`, sender: -1 };
    const votes = qc.signers.map((sender, i) => ({
      type: 'vote' as const, epoch, phase: qc.phase, view: qc.view, blockHash: qc.blockHash, sender, signature: qc.signatures[i]!,
    }));
    for (let i = 0; i < votes.length; i += QC_BATCH) {
      const batch = votes.slice(i, i + QC_BATCH);
      const results = await Promise.all(batch.map((v) => this.#check(v)));
      const bad = results.indexOf(false);
      if (bad >= 0) return { ok: false, what, sender: batch[bad]!.sender };
    }
    return { ok: true };
  }

  /** Every signature a message carries: its own and those of the QCs inside it. */
  async verifyMessage(m: ConsensusMessage): Promise<VerifyResult> {
    switch (m.type) {
      case 'proposal': {
        const [own, qc] = await Promise.all([this.#check(m), this.#checkQc(m.justify, m.block.header.epoch)]);
        return !own ? { ok: false, what: 'proposal', sender: m.sender } : qc;
      }
      case 'vote':
        return (await this.#check(m)) ? { ok: true } : { ok: false, what: 'vote', sender: m.sender };
      case 'new-view': {
        // A QC reference (every member but the target view's leader gets one) has no signatures
        // to check: the NEW-VIEW's own signature covers it, and the engine learns no QC from it.
        if (isQcRef(m.highQC)) return (await this.#check(m)) ? { ok: true } : { ok: false, what: 'new-view', sender: m.sender };
        const [own, qc] = await Promise.all([this.#check(m), this.#checkQc(m.highQC, m.epoch)]);
        return !own ? { ok: false, what: 'new-view', sender: m.sender } : qc;
      }
      case 'qc':
        return this.#checkQc(m.qc, m.epoch);
      default: {
        const never: never = m;
        return { ok: false, what: `unknown ${JSON.stringify(never)}`, sender: -1 };
      }
    }
  }

  async verifyQc(qc: QuorumCert, epoch = 0): Promise<VerifyResult> {
    return this.#checkQc(qc, epoch);
  }

  /** The engine's `deps.verify`: a cache hit for everything verifyMessage let through. */
  verifySync = (m: SignedMessage): boolean => {
    const pk = this.#opts.publicKeys[m.sender];
    if (!pk) return false;
    const bytes = signingBytesOf(this.#opts.chainId, m);
    const key = this.#key(m, bytes);
    if (this.#verified.has(key)) {
      this.#hits++;
      return true;
    }
    if (this.#failed.has(key)) return false;
    this.#misses++;
    const ok = this.#opts.dsa.verifySync(pk, bytes, m.signature);
    if (ok) this.#remember(key);
    else this.#rememberFailure(key);
    return ok;
  };

  /**
   * A signature our signer returned for `req`, checked against our own public key before anything
   * carries it: a signer with the wrong key, or a broken one, must not make us send garbage.
   */
  async verifyGrant(self: number, req: SignRequest, signature: Uint8Array): Promise<boolean> {
    const pk = this.#opts.publicKeys[self];
    return pk !== undefined && this.#opts.dsa.verify(pk, signingBytesOfRequest(this.#opts.chainId, req), signature);
  }

  /** Our own signatures, once verifyGrant passed them, need no second check. */
  trust(m: SignedMessage): void {
    this.#remember(this.#key(m, signingBytesOf(this.#opts.chainId, m)));
  }

  #rememberFailure(key: string): void {
    if (this.#failed.size >= FAILED_LIMIT) this.#failed.delete(this.#failed.values().next().value!);
    this.#failed.add(key);
  }

  #remember(key: string): void {
    if (this.#verified.size >= CACHE_LIMIT) {
      const it = this.#verified.values();
      for (let i = 0; i < CACHE_LIMIT / 4; i++) this.#verified.delete(it.next().value!);
    }
    this.#verified.add(key);
  }
}
