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

/**
 * Makes the stream with `replicas` copies. A meta leader can answer before every node has joined
 * the meta group: until then an R3 stream has "no suitable peers for placement", so that is tried
 * again for up to 30 s (on a slow day a CI run failed on the first try).
 */
async function makeStream(jsm: JetStreamManager, replicas: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await ensureStream(jsm, blocksStreamSpec({ replicas }));
      return;
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (!/no suitable peers for placement/i.test(String(cause ?? err)) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Starts the cluster on `hosts` (three), waits for JetStream, and makes the stream with R3. */
export async function startNatsCluster(tb: Testbed, runner: Runner, hosts: readonly Host[]): Promise<NatsCluster> {
  const bin = natsBinary();
  const dir = path.join(tb.workDir, 'nats');
  const services = hosts.map((h, i) => {
    const name = `n${i + 1}`;
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
    await makeStream(jsm, hosts.length);
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
