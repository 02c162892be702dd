// A 3-node NATS cluster with JetStream on hosts of its own, and the committed-block stream
// replicated on all three (R3). Each node's config file is written into the test's work dir.

import fs from 'node:fs';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { blocksStreamSpec, ensureStream } from '#libs/events/index.ts';
import { natsServerBinary } from '#libs/events/nats-binary.ts';
import type { Host, Testbed } from './netns.ts';
import type { Runner, Service } from './procs.ts';

export const NATS_PORT = 4222;
export const NATS_CLUSTER_PORT = 6222;
/** nats-server's monitoring port: /jsz tells who is in the JetStream meta group. */
export const NATS_MONITOR_PORT = 8222;

export function natsBinary(): string {
  const bin = natsServerBinary();
  if (!bin) throw new Error('testbed: nats-server is not installed (bash scripts/ensure-nats.sh installs it)');
  return bin;
}

export const natsUrl = (h: Host): string => `nats://${h.addr}:${NATS_PORT}`;

export interface NatsCluster {
  hosts: Host[];
  services: Service[];
  urls: string[];
  /** A connection from the controller to every node (for the checker); closed by close(). */
  nc: NatsConnection;
  jsm: JetStreamManager;
  close(): Promise<void>;
}

function config(name: string, host: Host, peers: readonly Host[], storeDir: string): string {
  // nats-server's own config syntax; JSON strings are valid there.
  return [
    `server_name: ${JSON.stringify(name)}`,
    `listen: ${JSON.stringify(`${host.addr}:${NATS_PORT}`)}`,
    `http: ${JSON.stringify(`${host.addr}:${NATS_MONITOR_PORT}`)}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(storeDir)}`,
    '  max_memory_store: 64MB',
    '  max_file_store: 1GB',
    '}',
    'cluster {',
    '  name: "btcfedtb"',
    `  listen: ${JSON.stringify(`${host.addr}:${NATS_CLUSTER_PORT}`)}`,
    `  routes: [${peers.map((p) => JSON.stringify(`nats://${p.addr}:${NATS_CLUSTER_PORT}`)).join(', ')}]`,
    '}',
    '',
  ].join('\n');
}

/** True once the node answers and JetStream has a meta leader (the account info call needs one). */
async function jetStreamReady(url: string): Promise<boolean> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: [url], timeout: 1000, reconnect: false });
    const jsm = await jetstreamManager(nc, { timeout: 2000 });
    await jsm.getAccountInfo();
    return true;
  } catch {
    return false;
  } finally {
    await nc?.close().catch(() => undefined);
  }
}

/** The server name of the i-th node (n1, n2, …). */
const nodeName = (i: number): string => `n${i + 1}`;

interface MetaView { leader: string; members: string[] }

/**
 * The JetStream meta group as the node on `h` sees it: its leader, and the members the leader
 * hears (itself and its current replicas). Undefined where the node does not answer or is not
 * the leader (only the leader lists the replicas).
 */
async function metaGroup(h: Host, name: string): Promise<MetaView | undefined> {
  try {
    const res = await fetch(`http://${h.addr}:${NATS_MONITOR_PORT}/jsz`, { signal: AbortSignal.timeout(2000) });
    const body = await res.json() as { meta_cluster?: { leader?: string; replicas?: { name: string; current: boolean; offline?: boolean }[] } };
    const meta = body.meta_cluster;
    if (!meta?.leader || meta.leader !== name) return undefined;
    return { leader: meta.leader, members: [meta.leader, ...(meta.replicas ?? []).filter((r) => r.current && !r.offline).map((r) => r.name)] };
  } catch {
    return undefined;
  }
}

/**
 * Waits until the meta group holds every node, then makes the stream with one copy on each.
 *
 * nats-server 2.9 (Debian's) sizes a new meta group by the routes it is given (two here, not
 * counting itself), so two nodes elect a leader and the third must be added after. When the nodes
 * start together their routes race (each dials each other twice; "Duplicate Route" closes some),
 * and one run in five or so the third node's answers never reach the leader: it stays out of the
 * group, and an R3 stream has "no suitable peers for placement" for as long as we waited (30 s
 * failed a CI run). Starting the nodes one by one did not avoid it. A node still out of the group
 * after `graceMs` is restarted: alone, it dials peers whose routes are settled, and is added.
 */
async function makeStream(runner: Runner, services: readonly Service[], hosts: readonly Host[], jsm: JetStreamManager, graceMs = 5000): Promise<void> {
  const deadline = Date.now() + 90_000;
  let since = Date.now();
  for (;;) {
    const views = (await Promise.all(hosts.map((h, i) => metaGroup(h, nodeName(i))))).filter((v) => v !== undefined);
    const view = views[0];
    const missing = view ? hosts.map((_, i) => i).filter((i) => !view.members.includes(nodeName(i))) : [];
    if (view && missing.length === 0) {
      try {
        await ensureStream(jsm, blocksStreamSpec({ replicas: hosts.length }));
        return;
      } catch (err) {
        // The leader may count a node current a moment before placement does.
        if (!/no suitable peers for placement/i.test(String((err as { cause?: unknown }).cause ?? err))) throw err;
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`testbed: the JetStream meta group ${view ? `(leader ${view.leader}) lacks ${missing.map(nodeName).join(', ')}` : 'has no leader'} after 90 s; logs: ${services.map((s) => s.logFile).join(', ')}`);
    }
    if (missing.length > 0 && Date.now() - since > graceMs) {
      for (const i of missing) {
        process.stderr.write(`testbed: NATS ${nodeName(i)} is not in the JetStream meta group (leader ${view!.leader}) after ${graceMs} ms; restarting it\n`);
        await runner.restart(services[i]!);
      }
      since = Date.now();
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts the cluster on `hosts` (three), waits for JetStream, and makes the stream with R3. */
export async function startNatsCluster(tb: Testbed, runner: Runner, hosts: readonly Host[]): Promise<NatsCluster> {
  const bin = natsBinary();
  const dir = path.join(tb.workDir, 'nats');
  const services = hosts.map((h, i) => {
    const name = nodeName(i);
    const storeDir = path.join(dir, name, 'jetstream');
    fs.mkdirSync(storeDir, { recursive: true });
    const file = path.join(dir, `${name}.conf`);
    fs.writeFileSync(file, config(name, h, hosts.filter((x) => x !== h), storeDir));
    return runner.start({
      host: h, name: `nats.${name}`, cmd: bin, args: () => ['-c', file],
      probe: () => jetStreamReady(natsUrl(h)), readyTimeoutMs: 60_000,
    });
  });
  const started = await Promise.all(services);
  const urls = hosts.map(natsUrl);
  const nc = await connect({ servers: urls, name: 'btcfed-testbed-controller', maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
    await makeStream(runner, started, hosts, jsm);
  } catch (err) {
    // This connection reconnects for ever: left open, it keeps the test's process alive after
    // its failure (a CI run hung so).
    await nc.close().catch(() => undefined);
    throw err;
  }
  return {
    hosts: [...hosts], services: started, urls, nc, jsm,
    close: async () => { await nc.close().catch(() => undefined); },
  };
}
