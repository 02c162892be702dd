// The gateway service's composition root: reads flags, gets the member's config (with the libp2p
// key) from the store over gRPC, starts the libp2p node and the GatewayService, follows every new
// config version through WatchConfig, and shuts down in reverse: health NOT_SERVING → drain gRPC →
// stop watching → stop libp2p → drain NATS.
//
//   node services/gateway/main.ts --store HOST:PORT [--listen HOST:PORT] [--metrics HOST:PORT]
//     [--nats URL] [--no-nats] [--data-dir DIR] [--drop-private-addrs]
//     [--backoff-base DURATION] [--backoff-max DURATION] [--ping-interval DURATION]

import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { createLogger, setLevel, type Logger } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import {
  call, createClient, createServer, loadBtcfedProtos, waitForReady, type ClientSecurity, type ServerSecurity,
} from '#libs/rpc/index.ts';
import { createPromMetrics, serveMetrics } from '#libs/metrics/index.ts';
import { connectEvents, type EventsConnection } from '#libs/events/index.ts';
import { parseConfObject, parseConfText, parseDuration, parseHostPort, resolvePath, type Conf, type Peer } from '#libs/config/index.ts';
import { fatal, lifecycle, parseFlags } from '#libs/service/index.ts';
import { StoreServiceClient, type ConfigSnapshot } from '#libs/gen/btcfed/v1/store.pb.ts';
import { GatewayServiceService } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { readFileSync } from 'node:fs';
import { Gateway, type GatewayOptions } from './gateway.ts';
import { gatewayMetrics, type GatewayMetrics } from './metrics.ts';
import { listenAddresses } from './node.ts';
import { DEFAULT_BACKOFF } from './peer-table.ts';
import { gatewayService } from './rpc.ts';
import { settingsFrom, type Settings } from './settings.ts';

const USAGE = 'usage: gateway --store HOST:PORT [--listen HOST:PORT] [--metrics HOST:PORT] [--nats URL] [--no-nats] '
  + '[--data-dir DIR] [--drop-private-addrs] [--backoff-base DURATION] [--backoff-max DURATION] [--ping-interval DURATION]';

const FLAGS = {
  store: { type: 'string' }, listen: { type: 'string' }, metrics: { type: 'string' }, nats: { type: 'string' },
  'no-nats': { type: 'boolean' }, 'data-dir': { type: 'string' }, 'drop-private-addrs': { type: 'boolean' },
  'backoff-base': { type: 'string' }, 'backoff-max': { type: 'string' }, 'ping-interval': { type: 'string' },
} as const;

function duration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const d = parseDuration(value);
  if (!d.ok) throw new Error(`--${flag}: ${d.reason}\n${USAGE}`);
  return d.value;
}

/** mTLS with the member's files when conf.yaml (read from --data-dir) has `tls`; else loopback plaintext. */
function security(dataDir: string | undefined): { client: ClientSecurity; server: ServerSecurity } {
  if (!dataDir) return { client: { mode: 'insecure' }, server: { mode: 'insecure' } };
  const conf = parseConfText(readFileSync(path.join(dataDir, 'conf.yaml'), 'utf8'), path.join(dataDir, 'conf.yaml'));
  if (!conf.tls) return { client: { mode: 'insecure' }, server: { mode: 'insecure' } };
  const file = (p: string) => resolvePath(conf, dataDir, p);
  const files = { caFile: file(conf.tls.ca_file), certFile: file(conf.tls.cert_file), keyFile: file(conf.tls.key_file) };
  return { client: { mode: 'mtls', ...files }, server: { mode: 'mtls', ...files } };
}

function snapshotInput(s: ConfigSnapshot): { conf: Conf; peers: Peer[] } {
  return {
    conf: parseConfObject(JSON.parse(s.confJson), 'conf.yaml (from the store)'),
    peers: s.peers.map((p) => ({ publicKey: p.publicKey, peerId: p.peerId, addresses: p.addresses, lastSeenMs: p.lastSeenMs })),
  };
}

/** Follows WatchConfig for as long as the process runs, reconnecting after a lost stream. */
function watchVersions(client: StoreServiceClient, from: number, apply: (s: ConfigSnapshot) => Promise<void>, log: Logger): () => void {
  let stream: grpc.ClientReadableStream<{ snapshot?: ConfigSnapshot | undefined }> | undefined;
  let stopped = false;
  let after = from;
  let chain = Promise.resolve();
  const open = () => {
    if (stopped) return;
    stream = client.watchConfig({ includePrivateKey: true, afterVersion: after });
    stream.on('data', (res: { snapshot?: ConfigSnapshot | undefined }) => {
      const s = res.snapshot;
      if (!s || s.version <= after) return;
      after = s.version;
      chain = chain.then(() => apply(s)).catch((err: unknown) => log.error({ version: s.version, err: errorMessage(err) }, 'config version not applied'));
    });
    stream.on('error', (err: Error) => { if (!stopped) log.warn({ err: errorMessage(err) }, 'config watch lost; retrying'); });
    stream.on('close', () => { if (!stopped) setTimeout(open, 1000).unref(); });
  };
  open();
  return () => { stopped = true; stream?.cancel(); };
}

async function main(): Promise<void> {
  const boot = createLogger({ service: 'gateway' });
  let flags;
  let opts: GatewayOptions;
  try {
    flags = parseFlags(process.argv.slice(2), FLAGS, USAGE);
    if (!flags.store) throw new Error(`--store is required\n${USAGE}`);
    opts = {
      dropPrivate: flags['drop-private-addrs'] ?? false,
      backoff: { ...DEFAULT_BACKOFF, baseMs: duration('backoff-base', flags['backoff-base']) ?? DEFAULT_BACKOFF.baseMs,
        maxMs: duration('backoff-max', flags['backoff-max']) ?? DEFAULT_BACKOFF.maxMs },
      ...(flags['ping-interval'] ? { pingIntervalMs: duration('ping-interval', flags['ping-interval'])! } : {}),
    };
  } catch (err) {
    fatal(boot, err, 'reading flags');
  }
  const dataDir = flags['data-dir'] ? path.resolve(flags['data-dir']) : undefined;

  let sec;
  let client: StoreServiceClient;
  let snapshot: ConfigSnapshot;
  let settings: Settings;
  try {
    sec = security(dataDir);
    client = createClient(StoreServiceClient, flags.store, { security: sec.client });
    await waitForReady(client, 30_000);
    const res = await call(client.getConfig.bind(client), { includePrivateKey: true });
    if (!res.snapshot) throw new Error('the store sent no snapshot');
    snapshot = res.snapshot;
    settings = settingsFrom(snapshotInput(snapshot));
  } catch (err) {
    fatal(boot, err, 'getting the config from the store');
  }
  const conf = snapshotInput(snapshot).conf;
  const log = createLogger({ service: 'gateway', member: settings.member, level: conf.logging.level, format: conf.logging.format });
  const life = lifecycle(log);
  let nats: EventsConnection | undefined;
  let gateway: Gateway | undefined;
  try {
    const metrics = createPromMetrics({ prefix: 'btcfed_', defaultLabels: { member: settings.member, service: 'gateway' } });
    const gm: GatewayMetrics = gatewayMetrics(metrics);
    if (!flags['no-nats']) {
      nats = await connectEvents({ url: flags.nats ?? conf.nats.url, name: `btcfed-gateway-${settings.member}`, log: log.child({ module: 'nats' }), metrics });
    }
    const persist = async (peers: Peer[]): Promise<void> => {
      await call(client.upsertPeers.bind(client), { peers: peers.map((p) => ({ ...p })) });
    };
    const gw = await Gateway.start(settings, opts, { log, metrics: gm, events: nats?.events(settings.member, 'gateway'), persist });
    gateway = gw;

    // Frames up to twice the limit reach the envelope check (refused and counted, the stream lives);
    // anything larger is refused by grpc-js itself with RESOURCE_EXHAUSTED.
    const maxMessage = 2 * settings.maxFrameBytes + 1024 * 1024;
    const server = createServer({ security: sec.server, log: log.child({ module: 'rpc' }), reflection: loadBtcfedProtos(),
      grpcOptions: { 'grpc.max_receive_message_length': maxMessage, 'grpc.max_send_message_length': maxMessage } });
    server.addService(GatewayServiceService, gatewayService(() => gw, log.child({ module: 'rpc' })));
    life.add({ name: 'grpc', run: () => server.shutdown({ graceMs: 3000 }) });
    const port = await server.bind(flags.listen ?? conf.services.gateway.listen);
    const metricsAddr = flags.metrics ?? conf.services.gateway.metrics;
    const endpoint = metricsAddr ? await serveMetrics({ ...hostPort(metricsAddr), registry: metrics.registry }) : undefined;

    const stopWatch = watchVersions(client, snapshot.version, async (s) => {
      const input = snapshotInput(s);
      setLevel(log, input.conf.logging.level);
      const report = await gw.apply(settingsFrom(input), opts);
      gm.reloads.inc({ result: report.needsRestart.length > 0 ? 'partial' : 'ok' });
      if (report.needsRestart.length > 0) log.warn({ version: s.version, needsRestart: report.needsRestart }, 'config changes that need a restart were not applied');
      log.info({ version: s.version, applied: report.applied, peers: input.peers.length }, 'config version applied');
    }, log.child({ module: 'watch' }));

    // Steps run in the order added: gRPC (above), then the watch, the network, metrics, NATS.
    life.add({ name: 'watch', run: () => stopWatch() });
    life.add({ name: 'libp2p', run: () => gw.stop() });
    life.add({ name: 'metrics', run: () => endpoint?.close() });
    life.add({ name: 'nats', run: () => nats?.drain() });
    life.add({ name: 'store client', run: () => client.close() });

    log.info({ grpcPort: port, listen: listenAddresses(gw.node), peerId: settings.peerId, maxFrameBytes: settings.maxFrameBytes,
      validators: settings.validators.length, selfIndex: settings.selfIndex ?? null, peers: settings.peers.length,
      metricsPort: endpoint?.port, nats: nats ? 'on' : 'off', version: snapshot.version }, 'gateway ready');
  } catch (err) {
    await life.stop('start failed');
    await gateway?.stop().catch(() => undefined);
    await nats?.drain().catch(() => undefined);
    fatal(log, err, 'starting the gateway');
  }
}

function hostPort(addr: string): { host: string; port: number } {
  const r = parseHostPort(addr, true);
  if (!r.ok) throw new Error(`metrics address: ${r.reason}`);
  return r.value;
}

await main();
