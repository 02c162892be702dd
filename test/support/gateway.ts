// Gateway tests and benchmarks: members whose conf.yaml names each other as validators, a real
// store and a real gateway process per member on 127.0.0.1, the generated gRPC client, an
// Attach helper that plays the consensus service, and in-process libp2p nodes that play
// strangers (not validators) or a crowd of peers.

import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys';
import { generateIdentity, type Identity } from '#libs/config/index.ts';
import {
  GatewayServiceClient, PeerState, type AttachReady, type AttachResponse, type InboundFrame, type PeerPresence, type PeerStatus,
} from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { call } from '#libs/rpc/index.ts';
import { startService, type ServiceProcess } from './process.ts';
import { uniqueName, type TestMember } from './member.ts';
import { NATS_URL, startStore, type RunningStore } from './store.ts';

export { PeerState };

export interface GatewayMember extends TestMember {
  libp2pPort: number;
  /** The libp2p address this member's gateway listens on. */
  address: string;
}

import { freePort } from './ports.ts';

export { freePort };

const fakeSlhKey = (i: number) => (i + 1).toString(16).padStart(2, '0').repeat(32);

export interface ClusterOptions {
  /** How many of the members (the first ones) are validators; default all. */
  validators?: number;
  /** Whom member i has in its peers.yaml; default nobody. */
  knows?: (i: number) => number[];
  exchangeInterval?: string;
  connectionTimeout?: string;
  logLevel?: 'debug' | 'info';
  /** Extra fields of conf.yaml's `peers` (every test runs on 127.0.0.1: private addresses allowed, learned ones only in 127.0.0.0/8). */
  peers?: Record<string, unknown>;
}

/** n member data dirs with fixed libp2p ports, validators in member order. */
export async function makeCluster(n: number, opts: ClusterOptions = {}): Promise<GatewayMember[]> {
  const ids: Identity[] = [];
  for (let i = 0; i < n; i++) ids.push(await generateIdentity());
  const ports: number[] = [];
  for (let i = 0; i < n; i++) ports.push(await freePort());
  const validators = ids.slice(0, opts.validators ?? n).map((id, i) => ({ name: `v${i}`, peer_id: id.peerId, public_key: fakeSlhKey(i) }));
  const members: GatewayMember[] = [];
  for (let i = 0; i < n; i++) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-gw-'));
    const name = uniqueName('g');
    const address = `/ip4/127.0.0.1/tcp/${ports[i]}`;
    const conf = {
      node: { name, private_key: ids[i]!.privateKey },
      network: { addresses: [address] },
      peers: { exchange_interval: opts.exchangeInterval ?? '30s', connection_timeout: opts.connectionTimeout ?? '2s', allow_private_addresses: true, learned_networks: ['127.0.0.0/8'], ...opts.peers },
      logging: { level: opts.logLevel ?? 'debug', format: 'json' },
      validators,
    };
    const confPath = path.join(dir, 'conf.yaml');
    const peersPath = path.join(dir, 'peers.yaml');
    await fs.writeFile(confPath, `# gateway test member ${name}\n${stringify(conf)}`);
    const peers = (opts.knows?.(i) ?? []).map((j) => ({ public_key: ids[j]!.publicKey, addresses: [`/ip4/127.0.0.1/tcp/${ports[j]}`] }));
    await fs.writeFile(peersPath, stringify({ peers }));
    members.push({ dir, name, identity: ids[i]!, confPath, peersPath, libp2pPort: ports[i]!, address,
      cleanup: () => fs.rm(dir, { recursive: true, force: true }) });
  }
  return members;
}

export interface RunningGateway {
  svc: ServiceProcess;
  grpcPort: number;
  listen: string[];
  /** The Prometheus endpoint's port, when started with --metrics. */
  metricsPort: number | undefined;
  client: GatewayServiceClient;
  startedAt: number;
  readyAt: number;
  close(): Promise<void>;
}

export async function startGateway(store: RunningStore, extraArgs: string[] = []): Promise<RunningGateway> {
  const startedAt = performance.now();
  const svc = startService('services/gateway/main.ts', ['--store', `127.0.0.1:${store.port}`, '--listen', '127.0.0.1:0', '--nats', NATS_URL, ...extraArgs]);
  const ready = await svc.waitFor((l) => l.msg === 'gateway ready', 30_000);
  const readyAt = performance.now();
  const grpcPort = ready.grpcPort as number;
  const client = new GatewayServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(),
    { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  return {
    svc, grpcPort, listen: ready.listen as string[], metricsPort: ready.metricsPort as number | undefined, client, startedAt, readyAt,
    async close() { client.close(); await svc.stop(); },
  };
}

/**
 * A TCP relay in front of a gateway's gRPC port that can go silent: once frozen it reads both ways
 * and forwards nothing, closing no socket. To the gateway the client is then as a host that died or
 * a path that was cut with its FIN lost: no byte, no PING answer, no window update, and no end.
 */
export async function freezableRelay(targetPort: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      sockets.add(from);
      from.on('data', (chunk) => { if (!frozen) to.write(chunk); });
      from.on('error', () => undefined);
      from.on('close', () => { if (!frozen) to.destroy(); });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze: () => { frozen = true; },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface Node { store: RunningStore; gw: RunningGateway; member: GatewayMember }

/** Store + gateway for one member. */
export async function startMember(member: GatewayMember, gatewayArgs: string[] = []): Promise<Node> {
  const store = await startStore(member);
  try {
    return { store, gw: await startGateway(store, gatewayArgs), member };
  } catch (err) {
    await store.close();
    throw err;
  }
}

export async function stopAll(nodes: ReadonlyArray<Node | undefined>, members: readonly GatewayMember[] = []): Promise<void> {
  await Promise.allSettled(nodes.map(async (n) => { if (n) { await n.gw.close(); await n.store.close(); } }));
  await Promise.allSettled(members.map((m) => m.cleanup()));
}

export async function listPeers(gw: RunningGateway) {
  return call(gw.client.listPeers.bind(gw.client), {});
}

/** Polls ListPeers until the peer's status matches. */
export async function waitPeer(gw: RunningGateway, peerId: string, match: (p: PeerStatus) => boolean, timeoutMs = 15_000): Promise<PeerStatus> {
  const until = Date.now() + timeoutMs;
  let last: PeerStatus | undefined;
  while (Date.now() < until) {
    const res = await listPeers(gw);
    last = res.peers.find((p) => p.peerId === peerId);
    if (last && match(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`peer ${peerId} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

export interface Consumer {
  ready: Promise<AttachReady>;
  frames: InboundFrame[];
  /** What the gateway said of validators' presence, in order. */
  presence: PeerPresence[];
  send(to: number, frame: Uint8Array): boolean;
  broadcast(frame: Uint8Array): boolean;
  next(match?: (f: InboundFrame) => boolean, timeoutMs?: number): Promise<InboundFrame>;
  ended: Promise<grpc.StatusObject | Error>;
  stream: grpc.ClientDuplexStream<import('#libs/gen/btcfed/v1/gateway.pb.ts').AttachRequest, AttachResponse>;
  close(): void;
}

/** Attaches as the consensus service would (as a validator unless `metadata` says another role). */
export function attach(gw: RunningGateway, onFrame?: (f: InboundFrame) => void, metadata?: grpc.Metadata): Consumer {
  const stream = metadata ? gw.client.attach(metadata) : gw.client.attach();
  const frames: InboundFrame[] = [];
  const presence: PeerPresence[] = [];
  const waiters = new Set<() => void>();
  let resolveReady!: (r: AttachReady) => void;
  const ready = new Promise<AttachReady>((r) => { resolveReady = r; });
  stream.on('data', (res: AttachResponse) => {
    if (res.body?.$case === 'ready') resolveReady(res.body.value);
    if (res.body?.$case === 'presence') presence.push(res.body.value);
    if (res.body?.$case === 'frame') {
      if (onFrame) onFrame(res.body.value); else frames.push(res.body.value);
      for (const w of waiters) w();
    }
  });
  const ended = new Promise<grpc.StatusObject | Error>((resolve) => {
    stream.on('status', resolve);
    stream.on('error', resolve);
  });
  return {
    ready, frames, presence, stream, ended,
    send: (to, frame) => stream.write({ body: { $case: 'send', value: { to, toPeer: '', frame } } }),
    broadcast: (frame) => stream.write({ body: { $case: 'broadcast', value: { frame } } }),
    next(match = () => true, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        let from = 0;
        const check = () => {
          for (; from < frames.length; from++) {
            if (match(frames[from]!)) { clearTimeout(timer); waiters.delete(check); resolve(frames[from]!); return; }
          }
        };
        const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no matching frame within ${timeoutMs} ms (saw ${frames.length})`)); }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => { stream.cancel(); },
  };
}

/** A libp2p node in this process with a fresh identity (a stranger to every member), or with a member's key. */
export async function strangerNode(privateKey?: string, opts: { from?: string; listen?: boolean } = {}): Promise<Libp2p> {
  return createLibp2p({
    ...(privateKey ? { privateKey: privateKeyFromProtobuf(Buffer.from(privateKey, 'base64')) } : {}),
    // listen: false — no address to tell a gateway, so it is never a peer the gateway learns and dials.
    addresses: { listen: opts.listen === false ? [] : [`/ip4/${opts.from ?? '127.0.0.1'}/tcp/0`] },
    // `from`: another loopback address (127.0.0.2…) as its dials' source, so a gateway on this
    // host sees a host of its own. net.connect takes localAddress; @libp2p/tcp passes dialOpts on
    // without naming it in its type.
    transports: [tcp(opts.from ? { dialOpts: { localAddress: opts.from } as Record<string, unknown> } : {})],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 1000 },
    services: { identify: identify() },
  });
}

/** One sample of a gateway counter from its /metrics page (0 when absent), e.g. frames_refused_total with reason="muted". */
export async function gatewayCounter(gw: RunningGateway, name: string, label: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`btcfed_gateway_${name}{`) && l.includes(label));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

export const bytes = (n: number, seed = 1): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
