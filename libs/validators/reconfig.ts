// Reconfiguration: how the validator set of epoch e + 1 follows from epoch e's set and one
// committed change (add a member from its card, remove one, rotate one's SLH-DSA key and/or libp2p
// identity, with the addresses of its card, set the consensus parameters every member shares), and
// what makes a change valid and authorised. One home for these rules: block
// validity, the signer, sync, observers and the light client are to call these functions, never
// re-derive them (issue 27; see docs/reconfiguration.md for what is wired so far).
//
// A change names the epoch it ends; it is authorised by approvals — signatures over
// reconfigSigningBytes (its own domain tag, never confusable with a vote) — of at least a quorum
// of that epoch's validators. Checks are ordered cheapest first: shape and epoch, then the
// operations against the set, then the approvals' indices and count, and only then signatures.
// Pure: the signature check is passed in; no I/O, no clock.
// Must never accept a change for another epoch (stale or future), two operations on one member,
// a key or peer id that another member of the resulting set holds, a set below the minimum size,
// or fewer than a quorum of distinct, valid approvals.

import { FedError } from '#libs/errors/index.ts';
import { MEMBER_NAME, baseTimeoutProblem, idleHeartbeatProblem, memberAddressProblem } from '#libs/config/index.ts';
import { reconfigSigningBytes, sha256, toHex, type ReconfigFields, type ReconfigOpFields } from '#libs/crypto/index.ts';
import { ValidatorSet, type ValidatorEntry } from './set.ts';

export type ReconfigOp = ReconfigOpFields;
export type Reconfiguration = ReconfigFields;

/**
 * The consensus parameters every member of an epoch must share: the base view timeout (members on
 * different timers drift apart in views) and idle views' heartbeat (whether an empty view waits
 * for work). Genesis's are conf.yaml's (btcfed writes them from the genesis file); a `params`
 * operation sets both for the next epoch and every one after, until another does.
 */
export interface ConsensusParams {
  readonly baseTimeoutMs: number;
  readonly idleHeartbeatMs: number;
}

/** The parameters `change` sets for the next epoch, or undefined when it sets none. */
export function paramsOfChange(change: Reconfiguration): ConsensusParams | undefined {
  const op = change.ops.find((o) => o.kind === 'params');
  return op ? { baseTimeoutMs: op.baseTimeoutMs, idleHeartbeatMs: op.idleHeartbeatMs } : undefined;
}

/** One validator's signature over reconfigSigningBytes(change), by its index in the change's epoch. */
export interface Approval {
  readonly validator: number;
  readonly signature: Uint8Array;
}

export interface ReconfigRules {
  chainId: string;
  /** The parameter set's public key size: a card with a key of another size is refused. */
  publicKeyBytes: number;
  /** No change may leave fewer validators than this (default 4: one Byzantine member tolerated). */
  minValidators?: number;
  /** A peer id's syntax (libp2p); refusals name the field. Default: accepts any non-empty string. */
  checkPeerId?: (peerId: string) => string | undefined;
}

/** Operations one change may carry: enough for a ceremony, bounded for a block. */
export const MAX_OPS = 16;
export const DEFAULT_MIN_VALIDATORS = 4;

const refuse = (field: string, message: string, details: Record<string, unknown> = {}): never => {
  throw new FedError('RECONFIG_INVALID', `${field}: ${message}`, { field, ...details });
};

/** The change's name: SHA-256 of its signed bytes, hex. */
export function reconfigId(change: Reconfiguration): string {
  return toHex(sha256(reconfigSigningBytes(change)));
}

/**
 * The validator set epoch `set.epoch + 1` would have after `change`, or a RECONFIG_INVALID error
 * naming the field. Remaining members keep their order (a rotated one its index); added members
 * follow, in the order of the change. Does not look at approvals (see authorizeChange).
 */
export function nextValidatorSet(set: ValidatorSet, change: Reconfiguration, rules: ReconfigRules): ValidatorSet {
  if (change.chainId !== rules.chainId) refuse('chainId', `the change is for chain ${JSON.stringify(change.chainId)}, this is ${JSON.stringify(rules.chainId)}`);
  if (!Number.isSafeInteger(change.epoch)) refuse('epoch', 'not an integer');
  if (change.epoch < set.epoch) refuse('epoch', `stale: the change ends epoch ${change.epoch}, already past (now ${set.epoch})`, { reason: 'stale' });
  if (change.epoch > set.epoch) refuse('epoch', `the change ends epoch ${change.epoch}, not the current ${set.epoch}`, { reason: 'future' });
  if (!Array.isArray(change.ops) || change.ops.length === 0) refuse('ops', 'no operation');
  if (change.ops.length > MAX_OPS) refuse('ops', `${change.ops.length} operations, at most ${MAX_OPS}`);

  const entries: Array<ValidatorEntry | undefined> = set.members.map((v) => ({ name: v.name, peer_id: v.peerId, public_key: v.publicKey, addresses: v.addresses }));
  const added: ValidatorEntry[] = [];
  const touched = new Set<string>();
  change.ops.forEach((op, i) => {
    const at = `ops[${i}]`;
    if (op.kind === 'params') {
      // Not a member's name: no name can collide with it (names are a-z, 0-9 and "-").
      if (touched.has(' params')) refuse(`${at}.kind`, 'the parameters are set twice in one reconfiguration');
      touched.add(' params');
      const base = baseTimeoutProblem(op.baseTimeoutMs);
      if (base) refuse(`${at}.baseTimeoutMs`, `${op.baseTimeoutMs}: ${base}`);
      const idle = Number.isSafeInteger(op.idleHeartbeatMs) ? idleHeartbeatProblem(op.idleHeartbeatMs) : 'must be a whole number of milliseconds';
      if (idle) refuse(`${at}.idleHeartbeatMs`, `${op.idleHeartbeatMs}: ${idle}`);
      return;
    }
    if (touched.has(op.name)) refuse(`${at}.name`, `${op.name} is changed twice in one reconfiguration`);
    touched.add(op.name);
    const index = set.indexOfName(op.name);
    switch (op.kind) {
      case 'add': {
        if (index !== undefined) refuse(`${at}.name`, `${op.name} is already validator ${index}`);
        added.push(entryOf(op, at, rules));
        return;
      }
      case 'remove':
        if (index === undefined) refuse(`${at}.name`, `${op.name} is not a validator of epoch ${set.epoch}`);
        entries[index!] = undefined;
        return;
      case 'rotate': {
        if (index === undefined) refuse(`${at}.name`, `${op.name} is not a validator of epoch ${set.epoch}`);
        const next = entryOf(op, at, rules);
        const old = entries[index!]!;
        if (next.peer_id === old.peer_id && next.public_key === old.public_key) refuse(at, `${op.name}'s new identity is its old one`);
        entries[index!] = next;
        return;
      }
      default: {
        const never: never = op;
        refuse(`${at}.kind`, `unknown operation ${JSON.stringify((never as { kind?: unknown }).kind)}`);
      }
    }
  });
  const result = [...entries.filter((e): e is ValidatorEntry => e !== undefined), ...added];
  const min = rules.minValidators ?? DEFAULT_MIN_VALIDATORS;
  if (result.length < min) refuse('ops', `the change leaves ${result.length} validators, at least ${min} required`, { reason: 'too_few' });
  // A key or peer id held by two members of the resulting set (an added card reusing a member's,
  // a rotation onto another's) is refused by the set itself, naming both entries.
  try {
    return ValidatorSet.fromConfig(result, { epoch: set.epoch + 1 });
  } catch (err) {
    throw new FedError('RECONFIG_INVALID', `ops: the resulting set is invalid: ${(err as Error).message}`, { field: 'ops' });
  }
}

function entryOf(op: Extract<ReconfigOp, { peerId: string }>, at: string, rules: ReconfigRules): ValidatorEntry {
  if (typeof op.name !== 'string' || !MEMBER_NAME.test(op.name)) refuse(`${at}.name`, 'must be 1-32 characters of a-z, 0-9 and "-"');
  if (typeof op.peerId !== 'string' || op.peerId.length === 0) refuse(`${at}.peerId`, 'missing');
  const bad = rules.checkPeerId?.(op.peerId);
  if (bad) refuse(`${at}.peerId`, bad);
  if (!(op.publicKey instanceof Uint8Array) || op.publicKey.length !== rules.publicKeyBytes) {
    refuse(`${at}.publicKey`, `${op.publicKey instanceof Uint8Array ? op.publicKey.length : 0} bytes, the federation's parameter set has ${rules.publicKeyBytes}-byte keys`);
  }
  const addresses = op.addresses ?? [];
  addresses.forEach((a, j) => {
    const bad = memberAddressProblem(a, op.peerId);
    if (bad) refuse(`${at}.addresses[${j}]`, `${JSON.stringify(a)} ${bad}`);
  });
  if (new Set(addresses).size !== addresses.length) refuse(`${at}.addresses`, 'an address is listed twice');
  return { name: op.name, peer_id: op.peerId, public_key: toHex(op.publicKey), addresses };
}

/**
 * Whether `approvals` authorise `change` for `set`: at least a quorum of distinct validators of
 * the change's epoch, each signature valid over reconfigSigningBytes(change). Indices, duplicates
 * and the count are checked before any signature; a single invalid signature refuses the whole
 * (a proposer includes only approvals it checked). Throws RECONFIG_UNAUTHORISED naming the problem.
 */
export function authorizeChange(set: ValidatorSet, change: Reconfiguration, approvals: readonly Approval[],
  verify: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean): void {
  const unauthorised = (message: string, details: Record<string, unknown> = {}): never => {
    throw new FedError('RECONFIG_UNAUTHORISED', message, { epoch: set.epoch, quorum: set.quorum, ...details });
  };
  if (change.epoch !== set.epoch) unauthorised(`approvals are counted in epoch ${change.epoch}'s set, this set is epoch ${set.epoch}`);
  if (approvals.length > set.n) unauthorised(`${approvals.length} approvals for ${set.n} validators`);
  const seen = new Set<number>();
  approvals.forEach((a, i) => {
    if (!set.has(a.validator)) unauthorised(`approvals[${i}]: no validator ${a.validator} in epoch ${set.epoch}`, { index: i });
    if (seen.has(a.validator)) unauthorised(`approvals[${i}]: validator ${a.validator} approves twice`, { index: i });
    seen.add(a.validator);
  });
  if (seen.size < set.quorum) unauthorised(`${seen.size} approval${seen.size === 1 ? '' : 's'}, a quorum of epoch ${set.epoch} is ${set.quorum}`, { approvals: seen.size });
  const bytes = reconfigSigningBytes(change);
  const keys = set.publicKeys();
  approvals.forEach((a, i) => {
    if (!verify(keys[a.validator]!, bytes, a.signature)) {
      unauthorised(`approvals[${i}]: validator ${a.validator} (${set.byIndex(a.validator).name})'s signature does not verify`, { index: i });
    }
  });
}
