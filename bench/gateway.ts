// Gateway benchmarks against real processes (a store and a gateway per member, 127.0.0.1):
//  - connection set-up time (dial → Noise + Yamux upgraded) from a libp2p node to a gateway;
//  - consensus frames through gRPC → libp2p → gRPC (consumer on A → gateway A → gateway B →
//    consumer on B) for 17 KB (one SLH-DSA-SHA2-128f signature) and 256 KB frames: one-way
//    latency with one frame in flight, and throughput with ~4 MiB in flight;
//  - the baseline in the same run: a raw libp2p stream (TCP + Noise + Yamux, length-prefixed)
//    between two nodes in this process, same frame sizes.
// With the throughput, the CPU per MiB moved: of the two gateway processes on the gateway path, of
// this process (both ends) on the raw stream.
// Both consumers run in this process, so one clock stamps send and receipt.
// Run: node_modules/.bin/node bench/gateway.ts [--quick]

import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p, Stream } from '@libp2p/interface';
import { FrameDecoder, encodeFrame } from '../services/gateway/framing.ts';
import {
  PeerState, attach, makeCluster, startMember, stopAll, strangerNode, waitPeer, type Consumer, type Node,
} from '../test/support/gateway.ts';
import { ms, printMachine, processCpuMs, stats, table } from './support.ts';

const quick = process.argv.includes('--quick');
const SIZES = [17_088, 256 * 1024];
const latencyRounds = quick ? 30 : 300;
const throughputBytes = quick ? 16 << 20 : 128 << 20;
const dialRounds = quick ? 10 : 60;

const stamp = (size: number): Uint8Array => {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setFloat64(0, performance.now());
  return b;
};
const sentAt = (f: Uint8Array): number => new DataView(f.buffer, f.byteOffset, 8).getFloat64(0);

interface Path {
  send(frame: Uint8Array): Promise<void>;
  onFrame(fn: (f: Uint8Array) => void): void;
}

async function latency(path: Path, size: number): Promise<number[]> {
  const samples: number[] = [];
  let resolve: (() => void) | undefined;
  path.onFrame((f) => { samples.push(performance.now() - sentAt(f)); resolve?.(); });
  for (let i = 0; i < latencyRounds; i++) {
    const got = new Promise<void>((r) => { resolve = r; });
    await path.send(stamp(size));
    await got;
  }
  return samples;
}

/** CPU time (ms) of this process, or of the processes `pids` when given. */
function cpuMs(pids?: readonly number[]): number {
  if (!pids) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }
  return pids.reduce((sum, pid) => sum + (processCpuMs(pid) ?? Number.NaN), 0);
}

/**
 * Sustained rate with at most `window` frames in flight (about 4 MiB), so nothing queues up to be
 * dropped, and the CPU per MiB received of `pids` (default this process).
 */
async function throughput(path: Path, size: number, pids?: readonly number[]): Promise<{ mbps: number; framesPerS: number; received: number; sent: number; cpuUsPerMiB: number }> {
  const cpu0 = cpuMs(pids);
  const n = Math.max(20, Math.floor(throughputBytes / size));
  const window = Math.max(4, Math.floor((4 << 20) / size));
  let received = 0;
  let last = 0;
  let wake: (() => void) | undefined;
  path.onFrame(() => { received++; last = performance.now(); wake?.(); });
  const t0 = performance.now();
  for (let sent = 0; sent < n; sent++) {
    while (sent - received >= window) {
      // A lost frame must not stall the run: after 1 s the window moves on.
      const moved = await new Promise<boolean>((r) => { const t = setTimeout(() => r(false), 1000); wake = () => { clearTimeout(t); r(true); }; });
      if (!moved) break;
    }
    await path.send(stamp(size));
  }
  for (let quiet = 0; quiet < 10 && received < n; ) {
    const before = received;
    await new Promise((r) => setTimeout(r, 100));
    quiet = received === before ? quiet + 1 : 0;
  }
  const secs = ((last || performance.now()) - t0) / 1000;
  return { mbps: (received * size) / 1e6 / secs, framesPerS: received / secs, received, sent: n,
    cpuUsPerMiB: ((cpuMs(pids) - cpu0) * 1000) / ((received * size) / (1 << 20)) };
}

/** A's consumer sends to validator 1; `deliver` is wired to B's consumer's frames. */
function gatewayPath(from: Consumer): Path & { deliver(f: Uint8Array): void } {
  let handler: (f: Uint8Array) => void = () => {};
  return {
    async send(frame) { if (!from.send(1, frame)) await new Promise((r) => from.stream.once('drain', r)); },
    onFrame(fn) { handler = fn; },
    deliver: (f) => handler(f),
  };
}

async function rawPath(a: Libp2p, b: Libp2p): Promise<Path> {
  let handler: (f: Uint8Array) => void = () => {};
  await b.handle('/bench/raw/1.0.0', (stream) => {
    const d = new FrameDecoder(64 << 20);
    stream.addEventListener('message', (evt) => { for (const f of d.push(evt.data)) handler(f); });
  });
  const stream: Stream = await a.dialProtocol(b.getMultiaddrs()[0]!, '/bench/raw/1.0.0');
  return {
    async send(frame) { if (!stream.send(encodeFrame(frame, 64 << 20))) await stream.onDrain(); },
    onFrame(fn) { handler = fn; },
  };
}

async function dialTimes(target: string): Promise<number[]> {
  const node = await strangerNode();
  const samples: number[] = [];
  try {
    for (let i = 0; i < dialRounds; i++) {
      const t0 = performance.now();
      await node.dial(multiaddr(target));
      samples.push(performance.now() - t0);
      await node.hangUp(multiaddr(target));
    }
  } finally {
    await node.stop();
  }
  return samples;
}

async function main(): Promise<void> {
  printMachine('gateway benchmark' + (quick ? ' (--quick)' : ''), [
    `frames     ${SIZES.join(' and ')} bytes; latency: ${latencyRounds} frames one at a time; throughput: ~${throughputBytes >> 20} MiB per size`]);
  const members = await makeCluster(2, { knows: (i) => (i === 0 ? [1] : []), logLevel: 'info' });
  const nodes: Array<Node | undefined> = [];
  const raw = [await strangerNode(), await strangerNode()] as const;
  try {
    nodes[1] = await startMember(members[1]!);
    nodes[0] = await startMember(members[0]!);
    await waitPeer(nodes[0].gw, members[1]!.identity.peerId, (p) => p.state === PeerState.PEER_STATE_CONNECTED);
    const dials = await dialTimes(`${members[1]!.address}/p2p/${members[1]!.identity.peerId}`);
    const ca = attach(nodes[0].gw);
    const gw = gatewayPath(ca);
    const cb = attach(nodes[1].gw, (f) => gw.deliver(f.frame));
    await Promise.all([ca.ready, cb.ready]);
    const base = await rawPath(raw[0], raw[1]);
    const gatewayPids = nodes.map((n) => n?.gw.svc.proc.pid).filter((pid) => pid !== undefined);

    const d = stats(dials);
    console.log(table(['connection set-up (dial → Noise + Yamux)', 'n', 'p50 ms', 'p95 ms', 'max ms'],
      [['libp2p node → gateway process, 127.0.0.1', String(d.n), ms(d.p50), ms(d.p95), ms(d.max)]]));
    console.log('');
    const rows: string[][] = [];
    for (const size of SIZES) {
      const paths = [['gRPC → gateway A → libp2p → gateway B → gRPC', gw], ['baseline: raw libp2p stream, in-process', base]] as const;
      for (const [name, path] of paths) {
        const l = stats(await latency(path, size));
        const t = await throughput(path, size, path === gw ? gatewayPids : undefined);
        rows.push([`${(size / 1024).toFixed(0)} KiB  ${name}`, String(l.n), ms(l.p50), ms(l.p95), t.mbps.toFixed(1), t.framesPerS.toFixed(0),
          t.received === t.sent ? '0' : String(t.sent - t.received), t.cpuUsPerMiB.toFixed(0)]);
      }
    }
    console.log(table(['frames', 'n', 'p50 ms', 'p95 ms', 'MB/s', 'frames/s', 'dropped', 'CPU-µs/MiB'], rows));
    console.log('CPU-µs/MiB: of the two gateway processes on the gateway path; of this process (both ends) on the raw streams');
    console.log('\nrequirement: two gateways connect in under 3 s on a local network');
    ca.close();
    cb.close();
  } finally {
    await Promise.allSettled(raw.map((n) => n.stop()));
    await stopAll(nodes, members);
  }
}

await main();
