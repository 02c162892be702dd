// The schemas of conf.yaml and peers.yaml. Field names follow the P2P requirements
// (node.private_key, network.addresses, peers.exchange_interval, peers.connection_timeout,
// logging.level/format, peers[].public_key/addresses) and extend them with what the services
// need. Unknown keys are errors, so a typo is reported instead of silently ignored.
// The parsed form keeps the file's snake_case names; durations become numbers of milliseconds.

import { z } from 'zod';
import { PARAM_SETS, paramSpec, type ParamSet } from '#libs/crypto/index.ts';
import { idleHeartbeatProblem, parseCidr, parseDuration, parseHostPort, parsePeerId, parsePrivateKey, parsePublicKey, parseTcpMultiaddr } from './values.ts';

export const PARAM_SET_NAMES = [...PARAM_SETS] as [ParamSet, ...ParamSet[]];

const duration = (dflt: string, opts: { positive?: boolean } = {}) =>
  z.union([z.string(), z.number()]).default(dflt).transform((v, ctx) => {
    const d = parseDuration(v);
    if (!d.ok) { ctx.addIssue({ code: 'custom', message: d.reason }); return z.NEVER; }
    if (opts.positive && d.value <= 0) { ctx.addIssue({ code: 'custom', message: 'must be more than 0 (a view timer of 0 would end every view at once)' }); return z.NEVER; }
    return d.value;
  });

export const endpoint = (dflt: string) =>
  z.string().default(dflt).superRefine((v, ctx) => {
    const r = parseHostPort(v, true);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
  });

/** An optional metrics endpoint; "" turns metrics off. */
export const metricsEndpoint = z.string().default('').superRefine((v, ctx) => {
  if (v === '') return;
  const r = parseHostPort(v, true);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

const listenAddr = z.string().superRefine((v, ctx) => {
  const r = parseTcpMultiaddr(v, { listen: true });
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

export const peerAddr = z.string().superRefine((v, ctx) => {
  const r = parseTcpMultiaddr(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

/** SHA-256 of a client certificate's DER: 64 hex digits, colons and case as the operator likes. */
export const fingerprint = z.string().transform((v, ctx) => {
  const hex = v.replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    ctx.addIssue({ code: 'custom', message: 'must be a SHA-256 certificate fingerprint (64 hex digits, colons allowed)' });
    return z.NEVER;
  }
  return hex;
});

/** consensus.keep_blocks, when not 0: the fewest committed blocks a member keeps whole. */
export const MIN_KEEP_BLOCKS = 32;

export const MEMBER_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const memberName = z.string().regex(MEMBER_NAME, 'must be 1–32 characters of a-z, 0-9 and "-", starting with a letter or digit');

const privateKey = z.string().superRefine((v, ctx) => {
  const r = parsePrivateKey(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

export const libp2pPublicKey = z.string().superRefine((v, ctx) => {
  const r = parsePublicKey(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});

export const hexKey = z.string().regex(/^([0-9a-f]{2})+$/, 'must be lower-case hex');

const validator = z.strictObject({
  name: memberName,
  /** libp2p peer id the member's gateway uses: only these may send consensus frames. */
  peer_id: z.string().min(1).superRefine((v, ctx) => {
    const r = parsePeerId(v);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
  }),
  /** SLH-DSA public key, hex, raw FIPS 205 bytes. */
  public_key: hexKey,
});

const natsUrl = z.string().regex(/^(nats|tls):\/\/[^\s]+$/, 'must be a nats:// or tls:// URL');
const secretFile = z.string().min(1).refine((v) => !v.includes('\0'), 'must be a file path');

/**
 * How a service reaches NATS: one URL or a cluster's (`servers`), and at most one way to
 * authenticate — user and a password file, a token file, a creds file (JWT + nkey) or an nkey
 * seed file — plus TLS (the server's CA, and a client certificate where the server asks for
 * one). Secrets live in files, never in this file. Relative paths resolve like the others.
 */
export const natsSection = z.strictObject({
  url: natsUrl.default('nats://127.0.0.1:4222'),
  /** Every server of a cluster; when given, used instead of `url`. */
  servers: z.array(natsUrl).min(1).optional(),
  user: z.string().min(1).optional(),
  password_file: secretFile.optional(),
  token_file: secretFile.optional(),
  creds_file: secretFile.optional(),
  nkey_seed_file: secretFile.optional(),
  tls: z.strictObject({ ca_file: secretFile.optional(), cert_file: secretFile.optional(), key_file: secretFile.optional() }).optional(),
}).superRefine((n, ctx) => {
  const ways = [n.user !== undefined && 'user', n.token_file !== undefined && 'token_file', n.creds_file !== undefined && 'creds_file',
    n.nkey_seed_file !== undefined && 'nkey_seed_file'].filter(Boolean);
  if (ways.length > 1) ctx.addIssue({ code: 'custom', path: [ways[1] as string], message: `only one way to authenticate: ${ways.join(' and ')} are both set` });
  if (n.user !== undefined && n.password_file === undefined) ctx.addIssue({ code: 'custom', path: ['password_file'], message: 'user needs password_file' });
  if (n.password_file !== undefined && n.user === undefined) ctx.addIssue({ code: 'custom', path: ['user'], message: 'password_file needs user' });
  if (n.tls && (n.tls.cert_file === undefined) !== (n.tls.key_file === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['tls', n.tls.cert_file === undefined ? 'cert_file' : 'key_file'], message: 'cert_file and key_file go together' });
  }
});

/** A token bucket: tokens a second, and the most it holds (what a client may spend at once). */
const bucket = (rate: number, burst: number, minBurst: number, why: string) => z.strictObject({
  rate: z.number().positive().max(1e9).default(rate),
  burst: z.number().int().min(minBurst, `must be at least ${minBurst} (${why})`).max(1e9).default(burst),
}).prefault({});

/**
 * A token bucket of CPU milliseconds: a rate above 1000 ms a second would be more than the one
 * thread there is. No defaults here: what conf.yaml leaves out, either key or either field, is the
 * member's role's (readCpuLimits below).
 */
const cpuBucket = z.strictObject({
  rate: z.number().positive().max(1000, 'must be at most 1000 (ms a second: one whole core)').optional(),
  burst: z.number().int().min(1).max(1e9).optional(),
}).optional();

/** node.role. */
export const ROLES = ['validator', 'observer'] as const;
export type Role = (typeof ROLES)[number];
/** A token bucket of read CPU: milliseconds a second, and the most it holds. */
export interface CpuRate { rate: number; burst: number }
export type ReadCpuKey = 'read_cpu_per_client' | 'read_cpu_total';

/**
 * The defaults of services.consensus.limits.read_cpu_per_client and read_cpu_total, by node.role:
 * their one home (the schema leaves both keys to readCpuLimits).
 *
 * validator: its event loop runs consensus, which must not wait for readers: 15 ms a second per
 * client and 50 for all (5 % of the thread), bursts of 600 and 2,000 ms (docs/consensus.md, "Why
 * these defaults").
 *
 * observer: it runs no consensus, votes in no view and has no timer to miss; its event loop
 * serves reads and follows the chain (decoding, checking and storing what its sources send;
 * signatures are verified on the thread pool). So readers may have most of it, not all: 600 ms
 * a second for all clients together, leaving 400 ms of every second to following and to the part
 * of serving that is not measured (TLS, HTTP/2, garbage collection); an observer that lags while
 * a burst is spent catches up afterwards in runs of 64 blocks. A client may take a third of that,
 * 200 ms a second, so three heavy readers fill it and no single one can. Bursts of ten seconds'
 * worth (2,000 ms per client, 6,000 in all): a scan in pages of full blocks then meets the read
 * units (read_per_client, 200 blocks a second) before its read CPU.
 */
export const READ_CPU_DEFAULTS: Readonly<Record<Role, Readonly<Record<ReadCpuKey, Readonly<CpuRate>>>>> = {
  validator: { read_cpu_per_client: { rate: 15, burst: 600 }, read_cpu_total: { rate: 50, burst: 2000 } },
  observer: { read_cpu_per_client: { rate: 200, burst: 2000 }, read_cpu_total: { rate: 600, burst: 6000 } },
};

/**
 * The read CPU limits that apply to a member of `role`: conf.yaml's where it sets them (field by
 * field: `{ rate: 30 }` keeps the role's burst), the role's defaults elsewhere.
 */
export function readCpuLimits(l: Partial<Record<ReadCpuKey, Partial<CpuRate> | undefined>>, role: Role): Record<ReadCpuKey, CpuRate> {
  const d = READ_CPU_DEFAULTS[role];
  const one = (key: ReadCpuKey): CpuRate => ({ rate: l[key]?.rate ?? d[key].rate, burst: l[key]?.burst ?? d[key].burst });
  return { read_cpu_per_client: one('read_cpu_per_client'), read_cpu_total: one('read_cpu_total') };
}

/**
 * services.consensus.limits: what the public API (ConsensusService) gives one client — a verified
 * client certificate, or without TLS an address — and all clients together. Refusals are
 * RESOURCE_EXHAUSTED naming the key. See docs/consensus.md, "Client limits".
 */
export const consensusLimits = z.strictObject({
  /** Clients whose budgets are tracked at once; the least recently seen without a stream is forgotten first. */
  max_clients: z.number().int().min(2).max(1_000_000).default(4096),
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of the public listener: calls open at once on one connection. */
  http2_max_concurrent_streams: z.number().int().min(1).max(1_000_000).default(100),
  /** StreamCommits streams one client may hold open… */
  streams_per_client: z.number().int().min(1).max(100_000).default(16),
  /** …and all clients together. */
  streams_total: z.number().int().min(1).max(100_000).default(128),
  /** Read calls one client may have in flight, from admission until HTTP/2 has taken the whole answer… */
  reads_in_flight_per_client: z.number().int().min(1).max(100_000).default(4),
  /** …and all clients together. */
  reads_in_flight_total: z.number().int().min(1).max(100_000).default(64),
  /** A StreamCommits write the client has not taken for this long: the stream is cancelled (RESOURCE_EXHAUSTED) and its slot freed. */
  stream_stall: duration('15s').refine((ms) => ms > 0, 'must be more than 0'),
  /** A refused call is answered after this long, so a client that asks again at once (a flood) is slowed to a few calls a second per call it keeps open; 0 answers at once. */
  refusal_delay: duration('1s').refine((ms) => ms <= 10_000, 'must be at most 10s'),
  /** Bytes a stream may have written and not yet taken by the client before the next block is read (one block always may be). */
  stream_buffer_bytes: z.number().int().min(4096).max(256 << 20).default(64 << 10),
  /**
   * Read units a second per client: 1 a call and 1 a block it may return (GetStatus 1, GetBlock 2,
   * ListBlocks 1 + limit), a proof 10, a streamed block 1 (streams wait for budget, not refused)…
   */
  read_per_client: bucket(200, 5000, 101, 'a ListBlocks of 100 costs 101'),
  /** …and for all clients together. */
  read_total: bucket(1000, 20_000, 101, 'a ListBlocks of 100 costs 101'),
  /**
   * Milliseconds of CPU (the event loop's, which consensus shares) reads may take a second per
   * client, measured per call and charged after it: a client that overdrew it is refused until it
   * has refilled (GetStatus, GetValidators and GetTransaction without a proof: only by the total)…
   * Default by node.role (READ_CPU_DEFAULTS): absent here, readCpuLimits resolves it.
   */
  read_cpu_per_client: cpuBucket,
  /** …and for all clients together. */
  read_cpu_total: cpuBucket,
  /** Transactions offered a second (SubmitTransaction(s), accepted or not) per client; a call of more than the burst never passes… */
  submit_per_client: bucket(20_000, 40_000, 1, 'a call carries at least one'),
  /** …and for all clients together. */
  submit_total: bucket(50_000, 100_000, 1, 'a call carries at least one'),
}).prefault({});

/** consensus.chain_id (and the genesis file's): what every signature of the chain is bound to. */
export const chainId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1–64 characters of A-Z a-z 0-9 . _ -');

export const confSchema = z.strictObject({
  node: z.strictObject({
    name: memberName,
    /** Absent on first start: the store generates one and writes it back. */
    private_key: privateKey.optional(),
    /**
     * validator: takes part in consensus (must be in `validators`, with a signer). observer:
     * follows the chain, verifying every block and commit QC, and serves reads; never votes.
     */
    role: z.enum(ROLES).default('validator'),
  }),
  network: z.strictObject({
    addresses: z.array(listenAddr).min(1, 'needs at least one listen address'),
  }),
  peers: z.strictObject({
    exchange_interval: duration('30s'),
    connection_timeout: duration('10s'),
    /** Dial loopback, private and link-local addresses learned from peers (a devnet on one host); peers.yaml is always dialled. */
    allow_private_addresses: z.boolean().default(false),
    /**
     * When not empty, an address learned from a peer is taken (kept, persisted, dialled) only if it
     * is an IP inside one of these networks, e.g. the federation's own WAN; peers.yaml is dialled as
     * written whatever this says. Empty: any address (private ones as allow_private_addresses says).
     */
    learned_networks: z.array(z.string().transform((v, ctx) => {
      const r = parseCidr(v);
      if (!r.ok) { ctx.addIssue({ code: 'custom', message: r.reason }); return z.NEVER; }
      return r.value;
    })).max(64).default([]),
    /** Peers learned from peer exchange (not validators, not in peers.yaml) kept in the peer table and persisted. */
    max_learned_peers: z.number().int().min(0).max(10_000).default(256),
    /** libp2p connection budget; one slot per validator (and 4 spare) is kept from everyone else. */
    max_connections: z.number().int().min(8).max(10_000).default(512),
    /**
     * New inbound connections a second from one remote host (an IPv6 host: its /64), counted before the handshake (which
     * costs ~10 ms of CPU each); rate and burst are multiplied by one plus the validators whose
     * peers.yaml addresses are at that host, so members sharing a host reconnect together…
     */
    inbound_connections_per_host: bucket(1, 8, 1, 'one connection'),
    /** …and from all hosts where no validator is, together. */
    inbound_connections_unknown_hosts: bucket(5, 64, 1, 'one connection'),
  }).prefault({}),
  logging: z.strictObject({
    level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    format: z.enum(['json', 'text']).default('json'),
  }).prefault({}),
  /** Relative paths in this file resolve against data_dir; default: the directory of conf.yaml. */
  data_dir: z.string().min(1).optional(),
  nats: natsSection.prefault({}),
  services: z.strictObject({
    store: z.strictObject({ listen: endpoint('127.0.0.1:7100'), metrics: metricsEndpoint }).prefault({}),
    gateway: z.strictObject({ listen: endpoint('127.0.0.1:7200'), metrics: metricsEndpoint }).prefault({}),
    consensus: z.strictObject({
      listen: endpoint('127.0.0.1:7300'),
      admin_listen: endpoint('127.0.0.1:7301'),
      /** With tls: the client certificates (SHA-256 fingerprints) AdminService accepts; empty = any the CA signed. */
      admin_clients: z.array(fingerprint).default([]),
      metrics: metricsEndpoint,
      limits: consensusLimits,
    }).prefault({}),
    signer: z.strictObject({ address: endpoint('127.0.0.1:7400') }).prefault({}),
  }).prefault({}),
  /** Without tls, services talk plaintext and only on loopback. */
  tls: z.strictObject({
    ca_file: z.string().min(1),
    cert_file: z.string().min(1),
    key_file: z.string().min(1),
  }).optional(),
  crypto: z.strictObject({
    param_set: z.enum(PARAM_SET_NAMES).default('slh-dsa-sha2-128f'),
    backend: z.enum(['auto', 'node', 'noble']).default('auto'),
  }).prefault({}),
  consensus: z.strictObject({
    chain_id: chainId.default('btcfed-devnet'),
    base_timeout: duration('2s', { positive: true }),
    timeout_multiplier: z.number().min(1).max(10).default(1.5),
    max_timeout: duration('60s', { positive: true }),
    max_block_txs: z.number().int().min(1).max(1_000_000).default(10_000),
    max_block_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
    max_tx_bytes: z.number().int().min(1).max(1024 * 1024).default(64 * 1024),
    mempool_max_txs: z.number().int().min(1).max(10_000_000).default(200_000),
    /**
     * Transactions a member takes from each other validator a second (hand-offs of clients'
     * transactions, in bursts of one second's worth); beyond, they are refused and count towards
     * muting the sender. Members hand each leader at most 80 % of it. Same on every member.
     */
    handoff_txs_per_second: z.number().int().min(100).max(10_000_000).default(5_000),
    /**
     * Other validators' batches still held two seconds after they arrived are written to
     * <data-dir>/consensus/batches/ (a cache, read back at a restart: proposals naming them need no
     * fetch). Off: held in memory only, as before; some 1–2 CPU-µs a transaction less where the
     * federation is saturated. Read at start.
     */
    batches_on_disk: z.boolean().default(true),
    /**
     * Block time: a member votes for a proposal only when its time is at most this far ahead of
     * its own clock (how far the members' clocks may disagree; keep them synchronised, NTP)…
     */
    block_time_drift: duration('2s', { positive: true }),
    /**
     * Idle views: 0 makes a block every view, transactions or not. Above 0, a leader proposes only
     * when there is something to order (transactions, a reconfiguration), or this long after the
     * last commit (a heartbeat: monitoring and followers see the federation live); an idle
     * federation then writes a block per heartbeat instead of one every view. Same on every member.
     * At most 30s: monitoring takes a minute without a block for a stall (BtcfedNoCommit).
     */
    idle_heartbeat: duration('0s'),
    /**
     * Retention of the BTCFED_BLOCKS JetStream stream (block.committed events for applications):
     * older events, or the oldest past the byte limit, are dropped; 0 keeps them all. The chain
     * itself is in each member's block store. Same on every member sharing a NATS (each applies
     * its own at start). At least 10m (the stream's de-duplication window).
     */
    blocks_stream_max_age: duration('168h'),
    // No byte limit by default: JetStream reserves a stream's max_bytes, and a NATS with less storage
    // refuses the stream ("insufficient storage resources"), which stopped consensus from starting.
    blocks_stream_max_bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    /**
     * Retention of this member's block store: keep the bodies and QCs of the last keep_blocks
     * committed blocks; older ones are pruned (their headers, the hash at every height, the
     * transaction index and the epoch-change proofs stay). 0 keeps every block (an archive
     * member). A member or observer further behind than every peer's keep_blocks cannot catch up
     * by block sync: keep at least one archive member (docs/reconfiguration.md, "Retention").
     * Per member; applied at start.
     */
    keep_blocks: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    /**
     * How an observer, or a member being added, that lacks blocks starts: `auto` replays every block
     * from genesis while a source serves them, and joins from a checkpoint (a recent committed block,
     * the epoch proofs, and the history's headers and transaction ids; docs/reconfiguration.md) once
     * a source says it pruned them; `checkpoint` joins from one at once from an empty store;
     * `replay` never joins from one (it then needs a source that keeps every block).
     */
    bootstrap: z.enum(['auto', 'checkpoint', 'replay']).default('auto'),
    /** …and at most this plus the drift behind it (how late an honest proposal can arrive). */
    block_time_max_delay: duration('30s', { positive: true }),
    /**
     * Observer only: the peers (libp2p peer ids, other observers, say) it asks for blocks while any
     * of them is connected; empty, or none connected: the validators.
     */
    follow: z.array(z.string().min(1).superRefine((v, ctx) => {
      const r = parsePeerId(v);
      if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
    })).max(64).default([]),
  }).prefault({}),
  /** The genesis validator set, in index order; leader(view) = validators[view mod N]. */
  validators: z.array(validator).default([]),
}).superRefine((whole, ctx) => {
  // Runs even when some fields failed (so `config check` lists every problem at once): each check
  // looks only at fields that parsed, and skips what it cannot judge.
  const conf = whole as Partial<typeof whole>;
  const c: Partial<typeof whole.consensus> = conf.consensus ?? {};
  if (isNum(c.blocks_stream_max_age) && c.blocks_stream_max_age > 0 && c.blocks_stream_max_age < 10 * 60_000) {
    ctx.addIssue({ code: 'custom', path: ['consensus', 'blocks_stream_max_age'], message: 'must be 0 (keep every event) or at least 10m (the stream\'s de-duplication window)' });
  }
  if (isNum(c.keep_blocks) && c.keep_blocks > 0 && c.keep_blocks < MIN_KEEP_BLOCKS) {
    ctx.addIssue({ code: 'custom', path: ['consensus', 'keep_blocks'], message: `must be 0 (keep every block) or at least ${MIN_KEEP_BLOCKS} (a member a few views behind catches up from what its peers keep)` });
  }
  const idle = isNum(c.idle_heartbeat) ? idleHeartbeatProblem(c.idle_heartbeat) : undefined;
  if (idle) ctx.addIssue({ code: 'custom', path: ['consensus', 'idle_heartbeat'], message: idle });
  if (isNum(c.max_timeout) && isNum(c.base_timeout) && c.max_timeout < c.base_timeout) {
    ctx.addIssue({ code: 'custom', path: ['consensus', 'max_timeout'], message: 'must not be below consensus.base_timeout' });
  }
  if (isNum(c.max_tx_bytes) && isNum(c.max_block_bytes) && c.max_tx_bytes > c.max_block_bytes) {
    ctx.addIssue({ code: 'custom', path: ['consensus', 'max_tx_bytes'], message: 'must not exceed consensus.max_block_bytes' });
  }
  checkLimits(conf.services?.consensus?.limits, conf.node?.role === 'observer' ? 'observer' : 'validator', ctx);
  checkValidators(conf.validators, conf.crypto?.param_set, ctx);
  const name = conf.node?.name;
  const role = conf.node?.role;
  const listed = Array.isArray(conf.validators) && conf.validators.some((v) => isRecord(v) && v.name === name);
  if (role === 'observer' && listed) {
    ctx.addIssue({ code: 'custom', path: ['node', 'role'], message: `observer, but ${name} is in validators: a validator must not run as an observer (it would stop voting)` });
  }
  if (role === 'validator' && Array.isArray(c.follow) && c.follow.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['consensus', 'follow'], message: 'only an observer (node.role: observer) follows other peers' });
  }
}, { when: (payload) => isRecord(payload.value) });

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

type Validator = z.output<typeof validator>;

/**
 * A client's share within the whole: per-client counts within the totals, max_clients above what
 * clients can hold (so one holding nothing can always be forgotten), per-client rates within the
 * totals — for read CPU, as they apply to a member of `role`: set, or its role's defaults.
 */
function checkLimits(l: Partial<z.output<typeof consensusLimits>> | undefined, role: Role, ctx: z.RefinementCtx): void {
  if (!isRecord(l)) return;
  const at = (key: string) => ['services', 'consensus', 'limits', key];
  if (isNum(l.streams_per_client) && isNum(l.streams_total) && l.streams_per_client > l.streams_total) {
    ctx.addIssue({ code: 'custom', path: at('streams_per_client'), message: 'must not exceed streams_total' });
  }
  if (isNum(l.reads_in_flight_per_client) && isNum(l.reads_in_flight_total) && l.reads_in_flight_per_client > l.reads_in_flight_total) {
    ctx.addIssue({ code: 'custom', path: at('reads_in_flight_per_client'), message: 'must not exceed reads_in_flight_total' });
  }
  if (isNum(l.max_clients) && isNum(l.streams_total) && isNum(l.reads_in_flight_total) && l.max_clients <= l.streams_total + l.reads_in_flight_total) {
    ctx.addIssue({ code: 'custom', path: at('max_clients'), message: 'must exceed streams_total + reads_in_flight_total (a client holding a stream or a read is kept)' });
  }
  for (const kind of ['read', 'submit'] as const) {
    const mine = l[`${kind}_per_client`];
    const all = l[`${kind}_total`];
    if (isRecord(mine) && isRecord(all) && isNum(mine.rate) && isNum(all.rate) && (mine.rate > all.rate || mine.burst > all.burst)) {
      ctx.addIssue({ code: 'custom', path: at(`${kind}_per_client`), message: `must not exceed ${kind}_total (rate and burst)` });
    }
  }
  // Read CPU: what applies to a member of `role`, each key as set (a field left out: the role's) or
  // else the role's default. A value out of its range has its own issue already: no second one.
  const mine0: unknown = l.read_cpu_per_client;
  const all0: unknown = l.read_cpu_total;
  if ((mine0 === undefined || isRecord(mine0)) && (all0 === undefined || isRecord(all0))) {
    const { read_cpu_per_client: mine, read_cpu_total: all } = readCpuLimits(l, role);
    const valid = (r: CpuRate) => isNum(r.rate) && r.rate > 0 && r.rate <= 1000 && Number.isInteger(r.burst) && r.burst >= 1 && r.burst <= 1e9;
    if (valid(mine) && valid(all) && (mine.rate > all.rate || mine.burst > all.burst)) {
      const d = READ_CPU_DEFAULTS[role];
      const unset = all0 === undefined ? 'read_cpu_total' : mine0 === undefined ? 'read_cpu_per_client' : undefined;
      const why = unset ? `; ${unset} is not set: a${role === 'observer' ? 'n' : ''} ${role}'s default, { rate: ${d[unset].rate}, burst: ${d[unset].burst} }, applies` : '';
      ctx.addIssue({ code: 'custom', path: at('read_cpu_per_client'), message: `must not exceed read_cpu_total (rate and burst)${why}` });
    }
  }
}

/**
 * Keys of the parameter set's size; names, peer ids and keys unique. (conf.yaml and signer.yaml.)
 * Also run when other fields failed: entries or a parameter set that did not parse are skipped.
 */
export function checkValidators(validators: readonly Validator[] | undefined, paramSet: ParamSet | undefined, ctx: z.RefinementCtx): void {
  if (!Array.isArray(validators)) return;
  const keyBytes = paramSet !== undefined && (PARAM_SET_NAMES as readonly string[]).includes(paramSet) ? paramSpec(paramSet).publicKeyBytes : undefined;
  const seen = { name: new Set<string>(), peer_id: new Set<string>(), public_key: new Set<string>() };
  validators.forEach((v, i) => {
    if (!isRecord(v)) return;
    if (keyBytes !== undefined && typeof v.public_key === 'string' && v.public_key.length !== keyBytes * 2) {
      ctx.addIssue({ code: 'custom', path: ['validators', i, 'public_key'],
        message: `must be ${keyBytes} bytes (${keyBytes * 2} hex characters) for ${paramSet}, got ${v.public_key.length / 2}` });
    }
    for (const field of ['name', 'peer_id', 'public_key'] as const) {
      const value = v[field];
      if (typeof value !== 'string') continue;
      if (seen[field].has(value)) ctx.addIssue({ code: 'custom', path: ['validators', i, field], message: `duplicate ${field} "${value}"` });
      seen[field].add(value);
    }
  });
}

export const peerEntrySchema = z.strictObject({
  public_key: libp2pPublicKey,
  addresses: z.array(peerAddr).default([]),
  /** When this member last heard of or from the peer (ISO 8601); breaks merge ties. */
  last_seen: z.iso.datetime({ offset: true }).optional(),
});

export const peersSchema = z.strictObject({
  peers: z.array(peerEntrySchema).default([]),
});

export type ConfInput = z.input<typeof confSchema>;
export type Conf = z.output<typeof confSchema>;
export type PeerEntry = z.output<typeof peerEntrySchema>;
export type PeersFile = z.output<typeof peersSchema>;
