// Signature checks for everything that reaches the engine. Messages are verified here,
// asynchronously and in parallel on the thread pool, BEFORE the engine sees them; what verified
// is remembered, so the engine's synchronous `deps.verify` is a cache hit and no signature is
// checked twice. A message or QC with a bad signature never reaches the engine.

import { sha256, toHex, type SlhDsa } from '#libs/crypto/index.ts';
import { isGenesisQC, type ConsensusMessage, type Hash, type QuorumCert, type SignedMessage } from '#libs/hotstuff/index.ts';
import { signingBytesOf } from '#libs/wire/index.ts';

const CACHE_LIMIT = 65_536;

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
  #hits = 0;
  #misses = 0;

  constructor(opts: VerifierOptions) {
    this.#opts = opts;
  }

  get stats(): { cacheHits: number; cacheMisses: number; cached: number } {
    return { cacheHits: this.#hits, cacheMisses: this.#misses, cached: this.#verified.size };
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
    const ok = await this.#opts.dsa.verify(pk, bytes, m.signature);
    if (ok) this.#remember(key);
    return ok;
  }

  async #checkQc(qc: QuorumCert): Promise<VerifyResult> {
    if (isGenesisQC(qc, this.#opts.genesisHash)) return { ok: true };
    const votes = qc.signers.map((sender, i) => ({
      type: 'vote' as const, phase: qc.phase, view: qc.view, blockHash: qc.blockHash, sender, signature: qc.signatures[i]!,
    }));
    const results = await Promise.all(votes.map((v) => this.#check(v)));
    const bad = results.indexOf(false);
    return bad < 0 ? { ok: true } : { ok: false, what: `qc(${qc.phase},${qc.view}) vote`, sender: votes[bad]!.sender };
  }

  /** Every signature a message carries: its own and those of the QCs inside it. */
  async verifyMessage(m: ConsensusMessage): Promise<VerifyResult> {
    switch (m.type) {
      case 'proposal': {
        const [own, qc] = await Promise.all([this.#check(m), this.#checkQc(m.justify)]);
        return !own ? { ok: false, what: 'proposal', sender: m.sender } : qc;
      }
      case 'vote':
        return (await this.#check(m)) ? { ok: true } : { ok: false, what: 'vote', sender: m.sender };
      case 'new-view': {
        const [own, qc] = await Promise.all([this.#check(m), this.#checkQc(m.highQC)]);
        return !own ? { ok: false, what: 'new-view', sender: m.sender } : qc;
      }
      case 'qc':
        return this.#checkQc(m.qc);
      default: {
        const never: never = m;
        return { ok: false, what: `unknown ${JSON.stringify(never)}`, sender: -1 };
      }
    }
  }

  async verifyQc(qc: QuorumCert): Promise<VerifyResult> {
    return this.#checkQc(qc);
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
    this.#misses++;
    const ok = this.#opts.dsa.verifySync(pk, bytes, m.signature);
    if (ok) this.#remember(key);
    return ok;
  };

  /** Our own signatures, as the signer returned them, need no check. */
  trust(m: SignedMessage): void {
    this.#remember(this.#key(m, signingBytesOf(this.#opts.chainId, m)));
  }

  #remember(key: string): void {
    if (this.#verified.size >= CACHE_LIMIT) {
      const it = this.#verified.values();
      for (let i = 0; i < CACHE_LIMIT / 4; i++) this.#verified.delete(it.next().value!);
    }
    this.#verified.add(key);
  }
}
