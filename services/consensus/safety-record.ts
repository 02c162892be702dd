// The consensus engine's safety state as the block store keeps it, under `safety` in its meta
// database: what a restart restores the engine from (its view, its last vote, its locked and
// prepare QCs). Written inside the store's write transactions (persist), never alone.

import type { Database } from 'lmdb';
import { FedError } from '#libs/errors/index.ts';
import { QuorumCert as QuorumCertMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import type { QuorumCert, SafetyState } from '#libs/hotstuff/index.ts';
import { qcFromWire, qcToWire, type WireLimits } from '#libs/wire/index.ts';

/**
 * The safety state as stored under `safety`: the small fields as JSON. Its two QCs (tens of
 * kilobytes of SLH-DSA signatures each) live under `safety.lockedQC` / `safety.prepareQC` and are
 * written only when they change — not re-encoded and rewritten on every vote. A store written
 * before that (the QCs inline, base64) still loads.
 */
interface SafetyJson extends Omit<SafetyState, 'lockedQC' | 'prepareQC'> { lockedQC?: string; prepareQC?: string }

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: string): Uint8Array => { const b = Buffer.from(s, 'base64'); return new Uint8Array(b.buffer, b.byteOffset, b.byteLength); };

export class SafetyRecord {
  readonly #meta: Database<string, string>;
  readonly #path: string;
  readonly #limits: WireLimits;
  /** The QC objects last written under `safety.lockedQC` / `safety.prepareQC` (the engine's QCs are immutable). */
  #writtenLocked: QuorumCert | undefined;
  #writtenPrepare: QuorumCert | undefined;

  constructor(meta: Database<string, string>, path: string, limits: WireLimits) {
    this.#meta = meta;
    this.#path = path;
    this.#limits = limits;
  }

  /** Within a write transaction: the safety state, its QCs only where they changed since the last write. */
  put(s: SafetyState): void {
    const { lockedQC, prepareQC, ...small } = s;
    this.#meta.put('safety', JSON.stringify(small satisfies SafetyJson));
    if (lockedQC !== this.#writtenLocked) {
      this.#meta.put('safety.lockedQC', b64(QuorumCertMsg.encode(qcToWire(lockedQC)).finish()));
      this.#writtenLocked = lockedQC;
    }
    if (prepareQC !== this.#writtenPrepare) {
      this.#meta.put('safety.prepareQC', b64(QuorumCertMsg.encode(qcToWire(prepareQC)).finish()));
      this.#writtenPrepare = prepareQC;
    }
  }

  /** The state stored as `text` (meta's `safety`), with its QCs. */
  decode(text: string): SafetyState {
    const json = JSON.parse(text) as SafetyJson;
    const qc = (field: 'lockedQC' | 'prepareQC'): QuorumCert => {
      const encoded = json[field] ?? this.#meta.get(`safety.${field}`);
      if (encoded === undefined) throw new FedError('STORE_CORRUPT', `block store ${this.#path}: the safety state has no ${field}`);
      return qcFromWire(`safety.${field}`, QuorumCertMsg.decode(unb64(encoded)), this.#limits);
    };
    return { ...json, lockedQC: qc('lockedQC'), prepareQC: qc('prepareQC') };
  }

  /** A write that carried put() did not commit, or the state was cleared: the next put writes both QCs again. */
  unwritten(): void {
    this.#writtenLocked = undefined;
    this.#writtenPrepare = undefined;
  }
}
