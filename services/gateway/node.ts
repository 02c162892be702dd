// The libp2p node: TCP + Noise + Yamux + identify + ping, with the member's identity
// (node.private_key) and its listen addresses. libp2p's own reconnect queue and peer discovery
// are off: the dialer owns redials (backoff, delinquency) so there is one policy, not two.
// /dns4 and /dns6 addresses are dialled by the TCP transport, which hands the name to Node's
// resolver (getaddrinfo); no DNS library is involved. Every inbound TCP connection passes the
// gateway's gate (`accept`) before libp2p takes it. Must never listen with another key.

import net from 'node:net';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify, type Identify } from '@libp2p/identify';
import { ping, type Ping } from '@libp2p/ping';
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { PeerId } from '@libp2p/interface';
import { FedError, errorMessage } from '#libs/errors/index.ts';

export type GatewayNode = Libp2p<{ identify: Identify; ping: Ping }>;

export interface NodeOptions {
  privateKey: string;
  listen: readonly string[];
  dialTimeoutMs: number;
  /** Bytes one yamux stream may have in flight before the reader grants more. */
  streamWindowBytes: number;
  maxConnections?: number;
  /**
   * Whether a connection with this (authenticated) peer may be opened or kept; checked after the
   * Noise handshake of an inbound connection and before an outbound dial. Default: everyone.
   */
  admit?: (peerId: string) => boolean;
  /**
   * Whether an inbound TCP connection from this remote host (IP) may go on to libp2p and its
   * handshake; asked when TCP accepts it (gateListeners). Default: every one.
   */
  accept?: (host: string) => boolean;
}

/** The gate of each node's listeners, for those added while it runs. */
const gates = new WeakMap<GatewayNode, (host: string) => boolean>();
/** Servers whose connections already pass the gate. */
const gated = new WeakSet<net.Server>();

type Components = { transportManager: { listen(a: Multiaddr[]): Promise<void>; getListeners(): unknown[] } };
/** libp2p 3 has no public handle on its transports: the Libp2p class's `components` (not on its interface) has. */
const componentsOf = (node: GatewayNode) => (node as unknown as { components: Components }).components;

export async function createNode(opts: NodeOptions): Promise<GatewayNode> {
  let key;
  try {
    key = privateKeyFromProtobuf(Buffer.from(opts.privateKey, 'base64'));
  } catch (err) {
    throw new FedError('GATEWAY_NO_KEY', `node.private_key does not parse: ${errorMessage(err)}`);
  }
  let node: GatewayNode;
  try {
    node = await createLibp2p({
      privateKey: key,
      addresses: { listen: [...opts.listen] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({
        streamOptions: { maxStreamWindowSize: Math.max(256 * 1024, opts.streamWindowBytes) },
      })],
      connectionManager: {
        maxConnections: opts.maxConnections ?? 512,
        dialTimeout: opts.dialTimeoutMs,
        addressDialTimeout: opts.dialTimeoutMs,
        reconnectRetries: 0,
        // The gateway's own gate (inbound-gate.ts, through `accept`) bounds new connections per
        // host, knowing where the validators are; libp2p's per-host limit would be a second policy
        // that cannot (its default of 5 a second refuses a restart storm of a devnet on one host).
        inboundConnectionThreshold: 1_000_000,
        maxIncomingPendingConnections: 128,
      },
      // libp2p's monitor pings every connection every 10 s and aborts it when a ping takes over
      // 5 s. Under load (a ping queued behind frames, or a starved event loop) that closed live
      // connections by the hundred a minute at N = 21, and each reconnection cost more CPU than
      // the ping saved. The dialer pings and decides liveness instead (dialer.ts).
      connectionMonitor: { enabled: false },
      connectionGater: {
        denyInboundEncryptedConnection: (peerId) => !(opts.admit?.(peerId.toString()) ?? true),
        denyDialPeer: (peerId) => !(opts.admit?.(peerId.toString()) ?? true),
      },
      services: {
        identify: identify(),
        ping: ping({ timeout: opts.dialTimeoutMs }),
      },
      nodeInfo: { name: 'btcfed-gateway', version: '0.1.0' },
    });
  } catch (err) {
    throw new FedError('GATEWAY_LISTEN_FAILED', `cannot start libp2p on ${opts.listen.join(', ')}: ${errorMessage(err)}`,
      { listen: opts.listen }, { cause: err });
  }
  if (opts.accept) {
    gates.set(node, opts.accept);
    try {
      gateListeners(node);
    } catch (err) {
      await node.stop();
      throw err;
    }
  }
  return node;
}

/**
 * Puts the node's gate in front of libp2p on each of its TCP listeners: a socket from a host the
 * gate refuses is reset there, before libp2p wraps it. libp2p's connection gater is asked only
 * after the wrapping (a logger, abort signals and an error object per connection): a refused
 * connection cost the gateway ~0.45 ms there, and a stranger whose connections are refused just
 * connects again at once. @libp2p/tcp's listener creates its net.Server with its handler as the
 * server's only 'connection' listener; that handler now runs behind the gate. Throws if a listener
 * has no such server, so that a libp2p upgrade that changes it cannot leave the gate out silently.
 */
function gateListeners(node: GatewayNode): void {
  const accept = gates.get(node);
  if (!accept) return;
  for (const listener of componentsOf(node).transportManager.getListeners()) {
    const server = (listener as { server?: unknown }).server;
    if (!(server instanceof net.Server)) {
      throw new FedError('GATEWAY_LISTEN_FAILED', 'a libp2p listener has no TCP server to put the inbound gate in front of (@libp2p/tcp changed?)');
    }
    if (gated.has(server)) continue;
    const handlers = server.listeners('connection') as Array<(socket: net.Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: net.Socket) => {
      const host = socket.remoteAddress;
      if (host !== undefined && !accept(host)) { socket.resetAndDestroy(); return; }
      for (const h of handlers) h.call(server, socket);
    });
    gated.add(server);
  }
}

/**
 * Starts listening on more addresses while running; existing connections are untouched.
 * libp2p 3 has no public call for this: the transport manager's listen() is what start() itself
 * uses, reached through the node's `components` (public on the Libp2p class, not on its interface).
 */
export async function addListenAddresses(node: GatewayNode, addrs: readonly string[]): Promise<void> {
  if (addrs.length === 0) return;
  await componentsOf(node).transportManager.listen(addrs.map((a) => multiaddr(a)));
  gateListeners(node);
}

/** Our listen multiaddrs without the /p2p suffix, as peers.yaml holds addresses. */
export function listenAddresses(node: GatewayNode): string[] {
  return [...new Set(node.getMultiaddrs().map((m) => m.toString().replace(/\/p2p\/[^/]+$/, '')))];
}

/**
 * Round trip to a connected peer, in ms. A yamux PING frame where the connection's muxer offers
 * one: no stream is opened, so no protocol negotiation, stream bookkeeping or peer-store update
 * (a /ipfs/ping stream per peer per interval was a sixth of an idle gateway's CPU at N = 21).
 * The answer comes from the peer's muxer, so it proves the peer reads the connection. Otherwise,
 * the ping protocol. libp2p 3 exposes the muxer on its Connection class, not on the interface.
 */
export async function pingPeer(node: GatewayNode, peerId: PeerId, signal: AbortSignal): Promise<number> {
  const conn = node.getConnections(peerId).find((c) => c.status === 'open');
  const muxer = (conn as unknown as { muxer?: { status?: string; ping?: (o: { signal: AbortSignal }) => Promise<number> } } | undefined)?.muxer;
  if (muxer?.ping && muxer.status === 'open') return muxer.ping({ signal });
  return node.services.ping.ping(peerId, { signal });
}
