// The two files of a multi-host set-up: a member's public card (member-card.yaml, made by
// `btcfed member init` on the operator's own host) and the genesis (genesis.yaml, assembled by
// `btcfed genesis` from every member's card). One home for what makes them valid, for the
// validator order (sorted by name) and for the genesis digest members compare out of band.
// A card holds public facts only: a member's name, SLH-DSA public key and parameter set, and its
// libp2p peer id, public key and addresses. Must never hold a private key, passphrase or path.

import { z } from 'zod';
import { MAX_OP_ADDRESSES, paramSpec, sha256Hex, type ParamSet } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { fromZod, parseYaml } from './parse.ts';
import { PARAM_SET_NAMES, chainId, hexKey, libp2pPublicKey, memberName, peerAddr } from './schema.ts';
import { parseDuration, parsePublicKey, parseTcpMultiaddr } from './values.ts';

/** The versions of the two formats this build writes and reads. */
export const CARD_VERSION = 1;
export const GENESIS_VERSION = 1;

const version = (what: string, current: number) => z.number().int().superRefine((v, ctx) => {
  if (v > current) ctx.addIssue({ code: 'custom', message: `${what} version ${v} is newer than this btcfed reads (${current}); upgrade btcfed` });
  else if (v !== current) ctx.addIssue({ code: 'custom', message: `${what} version ${v} is not one this btcfed reads (${current})` });
});

export const memberCardSchema = z.strictObject({
  version: version('card', CARD_VERSION),
  name: memberName,
  slh_dsa: z.strictObject({
    param_set: z.enum(PARAM_SET_NAMES),
    /** Hex, raw FIPS 205 bytes: validators[i].public_key of conf.yaml. */
    public_key: hexKey,
  }),
  libp2p: z.strictObject({
    /** The gateway's peer id: validators[i].peer_id of conf.yaml. */
    peer_id: z.string().min(1),
    /** base64 protobuf public key, as peers.yaml holds it; the peer id is derived from it. */
    public_key: libp2pPublicKey,
    /** Where the other members dial this member's gateway. */
    addresses: z.array(peerAddr).min(1, 'needs at least one address the other members can dial').max(MAX_OP_ADDRESSES, `at most ${MAX_OP_ADDRESSES} addresses (what a reconfiguration carries)`),
  }),
}).superRefine((card, ctx) => {
  const keyBytes = paramSpec(card.slh_dsa.param_set).publicKeyBytes;
  if (card.slh_dsa.public_key.length !== keyBytes * 2) {
    ctx.addIssue({ code: 'custom', path: ['slh_dsa', 'public_key'],
      message: `must be ${keyBytes} bytes (${keyBytes * 2} hex characters) for ${card.slh_dsa.param_set}, got ${card.slh_dsa.public_key.length / 2}` });
  }
  const derived = parsePublicKey(card.libp2p.public_key);
  if (derived.ok && derived.value.peerId !== card.libp2p.peer_id) {
    ctx.addIssue({ code: 'custom', path: ['libp2p', 'peer_id'], message: `is not the peer id of libp2p.public_key (${derived.value.peerId})` });
  }
  card.libp2p.addresses.forEach((a, i) => {
    // The syntax is peerAddr's to report; what the address says of whom it reaches is checked here.
    if (!parseTcpMultiaddr(a).ok) return;
    const bad = memberAddressProblem(a, card.libp2p.peer_id);
    if (bad) ctx.addIssue({ code: 'custom', path: ['libp2p', 'addresses', i], message: bad });
  });
});

/**
 * What is wrong with `address` as one where the member with libp2p `peerId` is dialled (a card's
 * address, or one a reconfiguration carries), or undefined: a TCP multiaddr, naming no other
 * peer, and no wildcard nobody can dial. One home for cards and changes.
 */
export function memberAddressProblem(address: string, peerId: string): string | undefined {
  const r = parseTcpMultiaddr(address);
  if (!r.ok) return r.reason;
  if (r.value.peerId !== undefined && r.value.peerId !== peerId) return `names peer ${r.value.peerId}, not this member's ${peerId}`;
  if (r.value.host === '0.0.0.0' || r.value.host === '::') return 'is a wildcard address nobody can dial; give the host others reach this member at';
  return undefined;
}

export type MemberCard = z.output<typeof memberCardSchema>;

export const genesisSchema = z.strictObject({
  version: version('genesis', GENESIS_VERSION),
  chain_id: chainId,
  param_set: z.enum(PARAM_SET_NAMES),
  /** consensus.base_timeout of every member's conf.yaml. */
  base_timeout: z.string().superRefine((v, ctx) => {
    const d = parseDuration(v);
    if (!d.ok) ctx.addIssue({ code: 'custom', message: d.reason });
  }),
  /** consensus.idle_heartbeat of every member's conf.yaml; absent: 0 (a block every view). */
  idle_heartbeat: z.string().superRefine((v, ctx) => {
    const d = parseDuration(v);
    if (!d.ok) ctx.addIssue({ code: 'custom', message: d.reason });
    else if (d.value > 0 && (d.value < 1000 || d.value > 30_000)) ctx.addIssue({ code: 'custom', message: 'must be 0 (a block every view) or 1s to 30s' });
  }).optional(),
  /** Every member's card, in validator order: validator i is members[i]. */
  members: z.array(memberCardSchema).min(1, 'needs at least one member'),
  /** sha256:<hex> of everything above (genesisDigest); what members compare out of band. */
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256: and 64 hex digits'),
});

export type Genesis = z.output<typeof genesisSchema>;

/**
 * The validator order: by name, numbers within names compared as numbers (m2 before m10), so a
 * devnet's m0…mN keep their indices. Names are unique, so the order is total.
 */
export function compareNames(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
      return x.length - y.length; // "01" after "1"
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** JSON with object keys sorted at every level: the bytes the digest is taken over. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** sha256 over the genesis without its digest field, domain-separated. */
export function genesisDigest(g: Omit<Genesis, 'digest'>): string {
  // idle_heartbeat counts only when present: a genesis without it keeps the digest it always had.
  const { version: v, chain_id, param_set, base_timeout, idle_heartbeat, members } = g;
  return `sha256:${sha256Hex(`btcfed/v1/genesis\n${canonicalJson({ version: v, chain_id, param_set, base_timeout, idle_heartbeat, members })}`)}`;
}

/** The validator set of conf.yaml and signer.yaml, in index order. */
export function genesisValidators(g: Pick<Genesis, 'members'>): { name: string; peer_id: string; public_key: string }[] {
  return g.members.map((m) => ({ name: m.name, peer_id: m.libp2p.peer_id, public_key: m.slh_dsa.public_key }));
}

/** Duplicates and mixed parameter sets among cards, each named; [] when the set is sound. */
function setProblems(cards: readonly { card: MemberCard; from: string }[], paramSet?: ParamSet): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const once = (kind: string, value: string, from: string) => {
    const key = `${kind}\0${value}`;
    const first = seen.get(key);
    if (first !== undefined) problems.push(`${from} has the same ${kind} as ${first} (${value.length > 24 ? `${value.slice(0, 24)}…` : value})`);
    else seen.set(key, from);
  };
  for (const { card, from } of cards) {
    once('name', card.name, from);
    once('libp2p peer id', card.libp2p.peer_id, from);
    once('SLH-DSA public key', card.slh_dsa.public_key, from);
  }
  const sets = [...new Set(cards.map((c) => c.card.slh_dsa.param_set))];
  if (sets.length > 1) {
    problems.push(`mixed parameter sets: ${cards.map((c) => `${c.from} uses ${c.card.slh_dsa.param_set}`).join(', ')}; every member must use one`);
  } else if (paramSet !== undefined && sets[0] !== undefined && sets[0] !== paramSet) {
    problems.push(`the members use ${sets[0]} but the genesis says param_set ${paramSet}`);
  }
  return problems;
}

export function parseCardText(text: string, file: string): MemberCard {
  const r = memberCardSchema.safeParse(parseYaml(text, file));
  if (!r.success) throw fromZod(file, r.error);
  return r.data;
}

/**
 * The genesis of `chain` from the members' cards (`from` names each card in errors, e.g. its
 * file): refuses no cards, duplicate names, peer ids or keys, and mixed parameter sets.
 */
export function assembleGenesis(o: { chainId: string; baseTimeout: string; idleHeartbeat?: string; cards: readonly { card: MemberCard; from: string }[] }): Genesis {
  if (o.cards.length === 0) throw new FedError('GENESIS_INVALID', 'a genesis needs at least one member card');
  const problems = setProblems(o.cards);
  if (problems.length > 0) throw new FedError('GENESIS_INVALID', `cannot make a genesis: ${problems.join('; ')}`, { problems });
  const body = {
    version: GENESIS_VERSION,
    chain_id: o.chainId,
    param_set: o.cards[0]!.card.slh_dsa.param_set,
    base_timeout: o.baseTimeout,
    ...(o.idleHeartbeat !== undefined ? { idle_heartbeat: o.idleHeartbeat } : {}),
    members: [...o.cards].map((c) => c.card).sort((a, b) => compareNames(a.name, b.name)),
  };
  const r = genesisSchema.safeParse({ ...body, digest: genesisDigest(body) });
  if (!r.success) throw fromZod('genesis', r.error);
  return r.data;
}

/**
 * genesis.yaml: valid fields, the digest matching the content (else it was altered after
 * `btcfed genesis` made it), members sorted by name, no duplicates, one parameter set.
 */
export function parseGenesisText(text: string, file: string): Genesis {
  const r = genesisSchema.safeParse(parseYaml(text, file));
  if (!r.success) throw fromZod(file, r.error);
  const g = r.data;
  const want = genesisDigest(g);
  if (want !== g.digest) {
    throw new FedError('GENESIS_TAMPERED', `${file}: digest ${g.digest} does not match its content (${want}): the file was changed after btcfed genesis `
      + 'made it; get it again from whoever assembled it and compare the digest with the other operators', { file, digest: g.digest, computed: want });
  }
  const problems = setProblems(g.members.map((card, i) => ({ card, from: `members[${i}] (${card.name})` })), g.param_set);
  g.members.forEach((m, i) => {
    const next = g.members[i + 1];
    if (next && compareNames(m.name, next.name) >= 0) problems.push(`members are not in name order (${m.name} before ${next.name})`);
  });
  if (problems.length > 0) throw new FedError('GENESIS_INVALID', `${file}: ${problems.join('; ')}`, { file, problems });
  return g;
}
