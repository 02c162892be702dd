// The StoreService gRPC handlers: request validation, conversion between the store's
// snapshots and the generated messages, and the WatchConfig stream. FedError codes map to
// gRPC status in STATUS below, the one place this service does that. Who may call which method
// is STORE_POLICY (enforced by main.ts); the libp2p private key goes to the member's gateway
// certificate only, a request for it from any other certificate is refused, logged and counted.
// Must never put node.private_key into an answer to anything but the gateway (or plaintext loopback).

import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { parsePublicKey, parseTcpMultiaddr, parseYaml, type Peer } from '#libs/config/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { rpcHandlers, statusTable, type CallWithAuthContext } from '#libs/rpc/index.ts';
import { callerOf, certificateName, type CallerCheck, type RolePolicy } from '#libs/service/index.ts';
import type {
  ConfigSnapshot, Peer as PeerMsg, StoreServiceServer, UpsertPeersRequest,
} from '#libs/gen/btcfed/v1/store.pb.ts';
import type { MemberConfig, Snapshot } from './member-config.ts';

export const MAX_PEERS_PER_REQUEST = 1000;
export const MAX_ADDRESSES_PER_PEER = 32;
/** last_seen may be a little ahead of our clock (skew), not arbitrarily far. */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

const STATUS = statusTable({
  PEER_INVALID: grpc.status.INVALID_ARGUMENT,
  REQUEST_INVALID: grpc.status.INVALID_ARGUMENT,
  STORE_PRIVATE_KEY_REFUSED: grpc.status.PERMISSION_DENIED,
  RPC_PEER_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  RPC_PEER_NOT_ALLOWED: grpc.status.PERMISSION_DENIED,
});

/**
 * Who may call what, under mutual TLS (libs/service/identity.ts): the member's services read the
 * config; only the gateway (peer exchange) and the operator change peers.yaml.
 */
export const STORE_POLICY: RolePolicy<StoreServiceServer> = {
  getConfig: ['gateway', 'consensus', 'operator'],
  watchConfig: ['gateway', 'consensus', 'operator'],
  listPeers: ['gateway', 'consensus', 'operator'],
  upsertPeers: ['gateway', 'operator'],
  removePeer: ['gateway', 'operator'],
};

export interface StoreRpcDeps {
  config: MemberConfig;
  log: Logger;
  /** Who is calling (mTLS), for the private key; absent = plaintext on loopback, nothing to check. */
  callers?: () => CallerCheck;
  /** Counts rejected requests by method and reason code. */
  rejected?: (method: string, code: string) => void;
  now?: () => number;
}

export function toSnapshotMessage(s: Snapshot, includePrivateKey: boolean): ConfigSnapshot {
  const data = parseYaml(s.confText, 'conf.yaml') as { node?: Record<string, unknown> };
  if (!includePrivateKey && data.node) delete data.node.private_key;
  return {
    version: s.version,
    member: s.conf.node.name,
    confJson: JSON.stringify(data),
    peers: s.peers.map(toPeerMessage),
    confSha256: s.confSha,
    peersSha256: s.peersSha,
    loadedAtMs: s.loadedAtMs,
    peerId: s.peerId,
  };
}

function toPeerMessage(p: Peer): PeerMsg {
  return { publicKey: p.publicKey, peerId: p.peerId, addresses: [...p.addresses], lastSeenMs: p.lastSeenMs };
}

/** Validates every entry; the first problem rejects the whole request, naming entry and field. */
export function validatePeers(req: UpsertPeersRequest, now: number): Peer[] {
  if (req.peers.length === 0) throw new FedError('PEER_INVALID', 'peers: at least one peer is required');
  if (req.peers.length > MAX_PEERS_PER_REQUEST) {
    throw new FedError('PEER_INVALID', `peers: at most ${MAX_PEERS_PER_REQUEST} per request, got ${req.peers.length}`);
  }
  return req.peers.map((p, i) => {
    const where = `peers[${i}]`;
    const key = parsePublicKey(p.publicKey);
    if (!key.ok) throw new FedError('PEER_INVALID', `${where}.public_key: ${key.reason}`, { index: i, field: 'public_key' });
    const peerId = key.value.peerId;
    if (p.peerId !== '' && p.peerId !== peerId) {
      throw new FedError('PEER_INVALID', `${where}.peer_id: ${p.peerId} does not match the public key (${peerId})`, { index: i, field: 'peer_id' });
    }
    if (p.addresses.length > MAX_ADDRESSES_PER_PEER) {
      throw new FedError('PEER_INVALID', `${where}.addresses: at most ${MAX_ADDRESSES_PER_PEER}`, { index: i, field: 'addresses' });
    }
    p.addresses.forEach((a, j) => {
      const r = parseTcpMultiaddr(a);
      if (!r.ok) throw new FedError('PEER_INVALID', `${where}.addresses[${j}]: ${r.reason}`, { index: i, field: 'addresses' });
      if (r.value.peerId !== undefined && r.value.peerId !== peerId) {
        throw new FedError('PEER_INVALID', `${where}.addresses[${j}]: /p2p/${r.value.peerId} is not this peer (${peerId})`, { index: i, field: 'addresses' });
      }
    });
    if (p.lastSeenMs > now + MAX_CLOCK_SKEW_MS) {
      throw new FedError('PEER_INVALID', `${where}.last_seen_ms: ${p.lastSeenMs} is in the future`, { index: i, field: 'last_seen_ms' });
    }
    return { publicKey: p.publicKey.trim(), peerId, addresses: [...new Set(p.addresses)], lastSeenMs: p.lastSeenMs };
  });
}

/** Newest snapshots as they come; a slow reader skips to the latest rather than queueing them all. */
async function* snapshots(config: MemberConfig, afterVersion: number, signal: AbortSignal): AsyncGenerator<Snapshot> {
  let latest: Snapshot | undefined = config.snapshot;
  let wake: (() => void) | undefined;
  const off = config.onChange((s) => { latest = s; wake?.(); });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);
  let sent = afterVersion;
  try {
    while (!signal.aborted) {
      if (latest && latest.version > sent) {
        const s: Snapshot = latest;
        sent = s.version;
        yield s;
        continue;
      }
      await new Promise<void>((resolve) => { wake = resolve; });
      wake = undefined;
    }
  } finally {
    off();
    signal.removeEventListener('abort', onAbort);
  }
}

export function storeService(deps: StoreRpcDeps): StoreServiceServer {
  const h = rpcHandlers({ statusOf: STATUS, log: deps.log });
  const now = deps.now ?? Date.now;
  const counted = <T>(method: string, fn: () => Promise<T> | T): Promise<T> =>
    Promise.resolve().then(fn).catch((err: unknown) => {
      deps.rejected?.(method, err instanceof FedError ? err.code : 'INTERNAL');
      throw err;
    });
  /** The libp2p key is the gateway's alone: anyone else asking for it is refused and counted. */
  const keyAllowed = (method: string, call: CallWithAuthContext & { getPeer(): string }): void => {
    if (!deps.callers) return;
    const check = deps.callers();
    const caller = callerOf(call, check);
    if (caller.kind === 'plaintext' || caller.role === 'gateway') return;
    deps.rejected?.(method, 'STORE_PRIVATE_KEY_REFUSED');
    deps.log.warn({ method, caller: caller.name, fingerprint256: caller.fingerprint256, peer: call.getPeer() }, 'private key refused');
    throw new FedError('STORE_PRIVATE_KEY_REFUSED',
      `node.private_key (the libp2p key) is only for ${certificateName(check.member, 'gateway')}, not ${caller.name}; ask without include_private_key`);
  };
  return {
    getConfig: h.unary((req, call) => {
      if (req.includePrivateKey) keyAllowed('GetConfig', call);
      return { snapshot: toSnapshotMessage(deps.config.snapshot, req.includePrivateKey) };
    }),
    watchConfig: h.serverStream(async function* (req, call, signal) {
      if (req.includePrivateKey) keyAllowed('WatchConfig', call);
      for await (const s of snapshots(deps.config, req.afterVersion, signal)) {
        yield { snapshot: toSnapshotMessage(s, req.includePrivateKey) };
      }
    }),
    listPeers: h.unary(() => {
      const s = deps.config.snapshot;
      return { peers: s.peers.map(toPeerMessage), version: s.version };
    }),
    upsertPeers: h.unary((req) => counted('UpsertPeers', async () => {
      const r = await deps.config.upsertPeers(validatePeers(req, now()));
      return { added: r.added, updated: r.updated, unchanged: r.unchanged, ignoredSelf: r.ignoredSelf, version: r.version };
    })),
    removePeer: h.unary((req) => counted('RemovePeer', async () => {
      let peerId = req.peerId;
      if (req.publicKey !== '') {
        const key = parsePublicKey(req.publicKey);
        if (!key.ok) throw new FedError('PEER_INVALID', `public_key: ${key.reason}`);
        if (peerId !== '' && peerId !== key.value.peerId) throw new FedError('PEER_INVALID', 'peer_id and public_key name different peers');
        peerId = key.value.peerId;
      }
      if (peerId === '') throw new FedError('REQUEST_INVALID', 'peer_id or public_key is required');
      return deps.config.removePeer(peerId);
    })),
  };
}
