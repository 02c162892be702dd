// What the gateway takes from one config snapshot: listen addresses, the validator set (who may
// send consensus frames, and their indices; this member's seat found by its peer id), the known peers, the timers and the consensus
// frame limit. Pure: a snapshot in, a value out, so reloads can be diffed and unit-tested.
// Must never read the private key into anything but `privateKey` (it is not logged or diffed).

import { parsePrivateKey, parseTcpMultiaddr, type Cidr, type Conf, type Peer } from '#libs/config/index.ts';
import { paramSpec, type ParamSet } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import type { InboundGateLimits } from './inbound-gate.ts';

export interface Settings {
  member: string;
  peerId: string;
  /** base64 protobuf libp2p key (node.private_key). */
  privateKey: string;
  listen: string[];
  /** Known peers (peers.yaml), without ourselves; only usable TCP addresses kept. */
  peers: Peer[];
  /**
   * The validator set, with this member's seat (resolved by its peer id) when it is a validator;
   * undefined before the member joined a genesis (conf.yaml lists no validators yet).
   */
  validators: ValidatorSet | undefined;
  exchangeIntervalMs: number;
  connectionTimeoutMs: number;
  maxFrameBytes: number;
  paramSet: string;
  maxBlockBytes: number;
  /** peers.allow_private_addresses: dial private/loopback addresses learned from peers. */
  allowPrivate: boolean;
  /** peers.learned_networks: learned addresses are taken only inside these (empty: anywhere). */
  learnedNetworks: Cidr[];
  /** peers.max_learned_peers: learned peers kept in the table and persisted (validators and peers.yaml apart). */
  maxLearnedPeers: number;
  /** peers.max_connections: the libp2p connection budget (validators have reserved slots in it). */
  maxConnections: number;
  /** peers.inbound_connections_per_host / _unknown_hosts: new connections a second, before the handshake. */
  inbound: InboundGateLimits;
}

/** Room for the envelope around a block: headers, ids, QC fields, protobuf tags, chain id. */
const FRAME_HEADROOM_BYTES = 64 * 1024;
/** A proposal carries its justify QC; block sync may add the QC certifying the block: two per frame. */
const QCS_PER_FRAME = 2;
/** yamux carries 4 GiB frames in theory; we never want more than this in memory per frame. */
const MAX_FRAME_CAP_BYTES = 256 * 1024 * 1024;

/**
 * The largest consensus frame we accept or send: a proposal with a full block plus QCs of all N
 * signatures of the configured parameter set, plus headroom. At least 1 MiB (small devnets).
 */
export function maxFrameBytes(maxBlockBytes: number, validators: number, paramSet: string): number {
  const sig = paramSpec(paramSet as ParamSet).signatureBytes;
  const n = Math.max(1, validators);
  const qc = n * sig + Math.ceil(n / 8) + 128;
  const total = maxBlockBytes + QCS_PER_FRAME * qc + FRAME_HEADROOM_BYTES;
  return Math.min(MAX_FRAME_CAP_BYTES, Math.max(1024 * 1024, total));
}

export interface SnapshotInput { conf: Conf; peers: readonly Peer[] }

export function settingsFrom(input: SnapshotInput): Settings {
  const { conf } = input;
  if (!conf.node.private_key) {
    throw new FedError('GATEWAY_NO_KEY', 'conf.yaml has no node.private_key (the store must be asked with include_private_key)');
  }
  const id = parsePrivateKey(conf.node.private_key);
  if (!id.ok) throw new FedError('GATEWAY_NO_KEY', `node.private_key: ${id.reason}`);
  const validators = conf.validators.length === 0 ? undefined
    : ValidatorSet.fromConfig(conf.validators).withSelf({ peerId: id.value.peerId }, { optional: true });
  const peers = input.peers
    .filter((p) => p.peerId !== id.value.peerId)
    .map((p) => ({ ...p, addresses: p.addresses.filter((a) => dialable(a, p.peerId)) }));
  return {
    member: conf.node.name,
    peerId: id.value.peerId,
    privateKey: conf.node.private_key,
    listen: [...conf.network.addresses],
    peers,
    validators,
    exchangeIntervalMs: Math.max(100, conf.peers.exchange_interval),
    connectionTimeoutMs: Math.max(100, conf.peers.connection_timeout),
    maxFrameBytes: maxFrameBytes(conf.consensus.max_block_bytes, validators?.n ?? 0, conf.crypto.param_set),
    paramSet: conf.crypto.param_set,
    maxBlockBytes: conf.consensus.max_block_bytes,
    allowPrivate: conf.peers.allow_private_addresses,
    learnedNetworks: conf.peers.learned_networks,
    maxLearnedPeers: conf.peers.max_learned_peers,
    maxConnections: conf.peers.max_connections,
    inbound: { perHost: { ...conf.peers.inbound_connections_per_host }, unknownHosts: { ...conf.peers.inbound_connections_unknown_hosts } },
  };
}

/** A peer address we can dial: a valid TCP multiaddr whose /p2p part (if any) is that peer. */
export function dialable(address: string, peerId: string): boolean {
  const r = parseTcpMultiaddr(address);
  return r.ok && (r.value.peerId === undefined || r.value.peerId === peerId);
}

/** What changed between two settings, split into what applies live and what needs a restart. */
export interface SettingsChange {
  addedListen: string[];
  removedListen: string[];
  peersChanged: boolean;
  validatorsChanged: boolean;
  timersChanged: boolean;
  /** peers.allow_private_addresses / learned_networks / max_learned_peers. */
  discoveryChanged: boolean;
  frameLimitChanged: boolean;
  /** peers.inbound_connections_per_host / _unknown_hosts. */
  inboundChanged: boolean;
  /** Fields that changed but only take effect after a restart. */
  needsRestart: string[];
}

export function diffSettings(before: Settings, after: Settings): SettingsChange {
  const needsRestart: string[] = [];
  if (before.privateKey !== after.privateKey) needsRestart.push('node.private_key');
  if (before.member !== after.member) needsRestart.push('node.name');
  const removedListen = before.listen.filter((a) => !after.listen.includes(a));
  // A TCP listener cannot be closed without closing the connections it accepted.
  if (removedListen.length > 0) needsRestart.push('network.addresses (removed)');
  if (before.maxConnections !== after.maxConnections) needsRestart.push('peers.max_connections');
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const sameSet = (a: ValidatorSet | undefined, b: ValidatorSet | undefined) => (a === undefined || b === undefined ? a === b : a.equals(b));
  return {
    addedListen: after.listen.filter((a) => !before.listen.includes(a)),
    removedListen,
    peersChanged: !same(before.peers.map((p) => [p.peerId, p.addresses]), after.peers.map((p) => [p.peerId, p.addresses])),
    validatorsChanged: !sameSet(before.validators, after.validators),
    timersChanged: before.exchangeIntervalMs !== after.exchangeIntervalMs || before.connectionTimeoutMs !== after.connectionTimeoutMs,
    discoveryChanged: before.allowPrivate !== after.allowPrivate || before.maxLearnedPeers !== after.maxLearnedPeers
      || !same(before.learnedNetworks, after.learnedNetworks),
    frameLimitChanged: before.maxFrameBytes !== after.maxFrameBytes,
    inboundChanged: !same(before.inbound, after.inbound),
    needsRestart,
  };
}
