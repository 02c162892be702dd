// The gateway service's composition root: reads flags, gets the member's config (with the libp2p
// key) from the store over gRPC, starts the libp2p node and the GatewayService, follows every new
// config version through WatchConfig, and shuts down in reverse: health NOT_SERVING → drain gRPC →
// stop watching → stop libp2p → drain NATS.
//
//   node services/gateway/main.ts --store HOST:PORT [--listen HOST:PORT] [--metrics HOST:PORT]
//     [--nats URL] [--no-nats] [--data-dir DIR] [--drop-private-addrs]
//     [--backoff-base DURATION] [--backoff-max DURATION] [--ping-interval DURATION]

import path from 'node:path';
import { createLogger, logReady, setLevel } from '#libs/log/index.ts';
import {
  call, createClient, createServer, loadBtcfedProtos, waitForReady,
} from '#libs/rpc/index.ts';
import { createPromMetrics, serveMetrics } from '#libs/metrics/index.ts';
import { connectEvents, type EventsConnection } from '#libs/events/index.ts';
import { parseConfObject, parseDuration, type Conf, type Peer } from '#libs/config/index.ts';
import { endpointOf, fatal, guardService, lifecycle, memberSecurityFromDir, natsOptionsFor, parseFlags, refusalCounter, watchConfig } from '#libs/service/index.ts';
import { StoreServiceClient, type ConfigSnapshot } from '#libs/gen/btcfed/v1/store.pb.ts';
import { GatewayServiceService, PeerState } from '#libs/gen/btcfed/v1/gateway.pb.ts';
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

function snapshotInput(s: ConfigSnapshot): { conf: Conf; peers: Peer[] } {
  return {
    conf: parseConfObject(JSON.parse(s.confJson), 'conf.yaml (from the store)'),
    peers: s.peers.map((p) => ({ publicKey: p.publicKey, peerId: p.peerId, addresses: p.addresses, lastSeenMs: p.lastSeenMs })),
  };
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
    sec = memberSecurityFromDir(dataDir, 'gateway');
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
      nats = await connectEvents({ url: flags.nats ?? conf.nats.url, name: `btcfed-gateway-${settings.member}`, log: log.child({ module: 'nats' }), metrics,
        auth: natsOptionsFor(conf.nats, flags.nats, flags['data-dir']) });
    }
    const persist = async (peers: Peer[]): Promise<void> => {
      await call(client.upsertPeers.bind(client), { peers: peers.map((p) => ({ ...p })) });
    };
    const gw = await Gateway.start(settings, opts, { log, metrics: gm, events: nats?.events(settings.member, 'gateway'), persist });
    gateway = gw;

    // Frames up to twice the limit reach the envelope check (refused and counted, the stream lives);
    // anything larger is refused by grpc-js itself with RESOURCE_EXHAUSTED.
    const maxMessage = 2 * settings.maxFrameBytes + 1024 * 1024;
    const server = createServer({ security: sec.server, metrics, log: log.child({ module: 'rpc' }), reflection: loadBtcfedProtos,
      grpcOptions: { 'grpc.max_receive_message_length': maxMessage, 'grpc.max_send_message_length': maxMessage } });
    // Attach (the consensus stream) is for this member's consensus certificate only.
    server.addService(GatewayServiceService, guardService(GatewayServiceService, gatewayService(() => gw, log.child({ module: 'rpc' })),
      { attach: ['consensus'], listPeers: ['consensus', 'operator'] },
      { check: { member: settings.member, mtls: sec.server.mode === 'mtls' }, log: log.child({ module: 'rpc' }), refused: refusalCounter(metrics) }));
    life.add({ name: 'grpc', run: () => server.shutdown({ graceMs: 3000 }) });
    const port = await server.bind(flags.listen ?? conf.services.gateway.listen);
    const metricsAddr = flags.metrics ?? conf.services.gateway.metrics;
    // Ready means: this gateway reaches enough validators for its member to take part (itself and
    // the connected others make a quorum). A gateway outside the validator set is always ready.
    const notReady = (): string[] => {
      const set = gw.validators;
      if (set?.self === undefined) return [];
      const connected = gw.status().peers.filter((p) => p.isValidator && p.state === PeerState.PEER_STATE_CONNECTED).length;
      return connected + 1 < set.quorum ? [`connected to ${connected} of the ${set.n - 1} other validators; a quorum needs ${set.quorum - 1}`] : [];
    };
    const endpoint = metricsAddr ? await serveMetrics({ ...endpointOf(metricsAddr, 'metrics address'), registry: metrics.registry, notReady }) : undefined;

    const stopWatch = watchConfig(client, { afterVersion: snapshot.version, includePrivateKey: true }, async ({ snapshot: s }) => {
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

    logReady(log, { grpcPort: port, listen: listenAddresses(gw.node), peerId: settings.peerId, maxFrameBytes: settings.maxFrameBytes,
      validators: settings.validators?.n ?? 0, selfIndex: settings.validators?.selfIndex ?? null, peers: settings.peers.length,
      metricsPort: endpoint?.port, nats: nats ? 'on' : 'off', version: snapshot.version }, 'gateway ready');
  } catch (err) {
    await life.stop('start failed');
    await gateway?.stop().catch(() => undefined);
    await nats?.drain().catch(() => undefined);
    fatal(log, err, 'starting the gateway');
  }
}

await main();
