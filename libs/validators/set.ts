// The validator set of one epoch, as every service sees it: who the validators are (name, libp2p
// peer id, SLH-DSA public key, in index order), the quorum arithmetic over them, the leader of a
// view, and which of them this process is. One object, built once from the config and passed
// around, so that an epoch change replaces one value instead of a dozen computations.
// Pure data: no I/O, no clock, no randomness (libs/hotstuff may hold one). Immutable: a different
// set — another epoch, another self — is a new object.
// Must never count quorums over anything but the whole set, nor pick a leader by any rule but
// the one in libs/hotstuff quorum.ts (the engine's own default).

import { FedError } from '#libs/errors/index.ts';
import { faultBound, quorumSize, mayLead, toHex } from '#libs/hotstuff/index.ts';

/** A validator entry as conf.yaml, signer.yaml and genesis list it. */
export interface ValidatorEntry {
  name: string;
  peer_id: string;
  /** Hex, raw FIPS 205 bytes. */
  public_key: string;
  /**
   * Where its gateway is dialled, from the member card a reconfiguration added or rotated it with;
   * none for genesis members (peers.yaml lists them). Hints for gateways, not identity.
   */
  addresses?: readonly string[] | undefined;
}

export interface Validator {
  readonly index: number;
  readonly name: string;
  /** The libp2p peer id of the member's gateway. */
  readonly peerId: string;
  /** SLH-DSA public key, lower-case hex. */
  readonly publicKey: string;
  /** Where its gateway is dialled, as the change that seated it said (ValidatorEntry.addresses). */
  readonly addresses: readonly string[];
}

/**
 * What a process knows of itself: its member name (conf.yaml node.name, signer.yaml member), its
 * gateway's peer id (from node.private_key), its SLH-DSA public key (from its key file). Any
 * subset; every field given must name the same validator.
 */
export interface SelfClaim {
  name?: string;
  peerId?: string;
  publicKey?: string | Uint8Array;
}

const HEX = /^([0-9a-f]{2})+$/;

const keyHex = (key: string | Uint8Array): string => (typeof key === 'string' ? key : toHex(key));
const short = (s: string): string => (s.length > 24 ? `${s.slice(0, 16)}…` : s);

/** The claim in words, for errors: name m1, peer id 12D3…, key ab12…. */
export function describeClaim(claim: SelfClaim): string {
  const parts: string[] = [];
  if (claim.name !== undefined) parts.push(`name ${claim.name}`);
  if (claim.peerId !== undefined) parts.push(`peer id ${short(claim.peerId)}`);
  if (claim.publicKey !== undefined) parts.push(`public key ${short(keyHex(claim.publicKey))}`);
  return parts.length > 0 ? parts.join(', ') : 'nothing';
}

export class ValidatorSet {
  /** The epoch this set governs; genesis is epoch 0 (the only one until reconfiguration exists). */
  readonly epoch: number;
  /** N: the whole set. Quorums are counted over it, never over the peers that look alive. */
  readonly n: number;
  /** ⌊(N−1)/3⌋: the Byzantine members tolerated. */
  readonly f: number;
  /** ⌈(N+f+1)/2⌉: any two quorums share an honest member. */
  readonly quorum: number;
  /** In index order. */
  readonly members: readonly Validator[];
  /** This process's validator, when it is one (see withSelf). */
  readonly self: Validator | undefined;
  readonly #byName: ReadonlyMap<string, number>;
  readonly #byPeer: ReadonlyMap<string, number>;
  readonly #byKey: ReadonlyMap<string, number>;

  private constructor(epoch: number, members: readonly Validator[], self: Validator | undefined, maps?: ValidatorSet) {
    this.epoch = epoch;
    this.members = members;
    this.n = members.length;
    this.f = faultBound(this.n);
    this.quorum = quorumSize(this.n);
    this.self = self;
    this.#byName = maps ? maps.#byName : new Map(members.map((v) => [v.name, v.index]));
    this.#byPeer = maps ? maps.#byPeer : new Map(members.map((v) => [v.peerId, v.index]));
    this.#byKey = maps ? maps.#byKey : new Map(members.map((v) => [v.publicKey, v.index]));
    Object.freeze(this);
  }

  /**
   * The set of the config's `validators` (index order as listed). Refuses an empty set, an entry
   * without a name, peer id or key, a key that is not lower-case hex, and any name, peer id or
   * key listed twice — each error names the entry.
   */
  static fromConfig(entries: readonly ValidatorEntry[], opts: { epoch?: number } = {}): ValidatorSet {
    const epoch = opts.epoch ?? 0;
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new FedError('VALIDATORS_INVALID', `epoch ${epoch} is not a non-negative integer`, { epoch });
    if (entries.length === 0) throw new FedError('VALIDATORS_INVALID', 'the validator set is empty: it needs at least one validator', {});
    const seen = { name: new Map<string, number>(), peer_id: new Map<string, number>(), public_key: new Map<string, number>() };
    const members = entries.map((e, index): Validator => {
      for (const field of ['name', 'peer_id', 'public_key'] as const) {
        const value = e[field];
        if (typeof value !== 'string' || value.length === 0) {
          throw new FedError('VALIDATORS_INVALID', `validators[${index}] has no ${field}`, { index, field });
        }
        const first = seen[field].get(value);
        if (first !== undefined) {
          throw new FedError('VALIDATORS_INVALID', `validators[${index}] (${e.name}) has the same ${field} as validators[${first}] (${entries[first]!.name}): ${short(value)}`,
            { index, field, first });
        }
        seen[field].set(value, index);
      }
      if (!HEX.test(e.public_key)) {
        throw new FedError('VALIDATORS_INVALID', `validators[${index}] (${e.name}): public_key is not lower-case hex`, { index, field: 'public_key' });
      }
      return Object.freeze({ index, name: e.name, peerId: e.peer_id, publicKey: e.public_key, addresses: Object.freeze([...(e.addresses ?? [])]) });
    });
    return new ValidatorSet(epoch, Object.freeze(members), undefined);
  }

  /** This process's index, when it is a validator of the set. */
  get selfIndex(): number | undefined {
    return this.self?.index;
  }

  /**
   * Could validator `who` lead `view` under the schedule of libs/hotstuff (schedule.ts mayLead)?
   * Who does lead it depends on the committed record, which only the consensus engine holds.
   */
  mayLead(view: number, who: number): boolean {
    return mayLead(view, who, this.n);
  }

  has(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.n;
  }

  byIndex(index: number): Validator {
    if (!this.has(index)) throw new FedError('VALIDATOR_UNKNOWN', `no validator with index ${index} (epoch ${this.epoch} has ${this.n})`, { index, n: this.n });
    return this.members[index]!;
  }

  indexOfName(name: string): number | undefined {
    return this.#byName.get(name);
  }

  indexOfPeer(peerId: string): number | undefined {
    return this.#byPeer.get(peerId);
  }

  indexOfKey(publicKey: string | Uint8Array): number | undefined {
    return this.#byKey.get(keyHex(publicKey));
  }

  hasPeer(peerId: string): boolean {
    return this.#byPeer.has(peerId);
  }

  hasKey(publicKey: string | Uint8Array): boolean {
    return this.#byKey.has(keyHex(publicKey));
  }

  /** The validator of a peer id, if it is one. */
  byPeer(peerId: string): Validator | undefined {
    const i = this.#byPeer.get(peerId);
    return i === undefined ? undefined : this.members[i];
  }

  /** Raw public keys in index order (fresh copies: the caller may keep them). */
  publicKeys(): Uint8Array[] {
    return this.members.map((v) => Uint8Array.from(Buffer.from(v.publicKey, 'hex')));
  }

  /**
   * The one resolver of "who am I": the validator every field of the claim names, or undefined
   * when none of them is in the set (an observer, a gateway before its member joined). Throws
   * VALIDATOR_IDENTITY_CONFLICT when the fields name different validators, or some name one and
   * others none — a member configured as one validator and keyed as another must not start.
   */
  resolve(claim: SelfClaim): Validator | undefined {
    const found: { what: string; index: number | undefined }[] = [];
    if (claim.name !== undefined) found.push({ what: `name ${claim.name}`, index: this.indexOfName(claim.name) });
    if (claim.peerId !== undefined) found.push({ what: `peer id ${short(claim.peerId)}`, index: this.indexOfPeer(claim.peerId) });
    if (claim.publicKey !== undefined) found.push({ what: `public key ${short(keyHex(claim.publicKey))}`, index: this.indexOfKey(claim.publicKey) });
    if (found.length === 0) throw new FedError('VALIDATOR_IDENTITY_CONFLICT', 'no identity given to resolve (a name, peer id or public key)', {});
    const matched = found.filter((f) => f.index !== undefined);
    if (matched.length === 0) return undefined;
    const indices = new Set(found.map((f) => f.index));
    if (indices.size > 1) {
      const said = found.map((f) => (f.index === undefined ? `${f.what} is not in the set` : `${f.what} is validators[${f.index}] (${this.members[f.index]!.name})`));
      throw new FedError('VALIDATOR_IDENTITY_CONFLICT', `this member's identities disagree: ${said.join('; ')}`,
        { claim: describeClaim(claim), matches: found.map((f) => f.index ?? null) });
    }
    return this.members[matched[0]!.index!];
  }

  /**
   * This set with `self` resolved from the claim. Throws VALIDATOR_NOT_IN_SET naming the claim when
   * it matches no validator (unless `optional`: then self stays undefined).
   */
  withSelf(claim: SelfClaim, opts: { optional?: boolean } = {}): ValidatorSet {
    const self = this.resolve(claim);
    if (self === undefined && !opts.optional) {
      throw new FedError('VALIDATOR_NOT_IN_SET', `${describeClaim(claim)}: not a validator of epoch ${this.epoch} (validators: ${this.members.map((v) => v.name).join(', ')})`,
        { claim: describeClaim(claim), epoch: this.epoch });
    }
    return new ValidatorSet(this.epoch, this.members, self, this);
  }

  /** Same epoch, same validators in the same order, same self (addresses are hints: not compared). */
  equals(other: ValidatorSet): boolean {
    return this.epoch === other.epoch && this.self?.index === other.self?.index && this.n === other.n
      && this.members.every((v, i) => {
        const w = other.members[i]!;
        return v.name === w.name && v.peerId === w.peerId && v.publicKey === w.publicKey;
      });
  }
}
