// The store service's composition root: reads flags, loads the member's files, and wires
// the running config to gRPC, NATS, the file watch, SIGHUP and metrics. Shutdown runs in
// reverse: health NOT_SERVING → drain gRPC → stop watching → drain NATS → release the lock.
//
//   node services/store/main.ts --data-dir DIR [--listen HOST:PORT] [--nats URL] [--no-nats]

import path from 'node:path';
import { createLogger, logReady, setLevel } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { createServer, loadBtcfedProtos } from '#libs/rpc/index.ts';
import { createPromMetrics, serveMetrics } from '#libs/metrics/index.ts';
import { endpointOf, fatal, guardService, lifecycle, memberSecurity, natsOptionsFor, parseFlags } from '#libs/service/index.ts';
import { StoreServiceService } from '#libs/gen/btcfed/v1/store.pb.ts';
import { lockDir } from '#libs/files/index.ts';
import { loadConf, loadPeers } from './load.ts';
import { MemberConfig } from './member-config.ts';
import { STORE_POLICY, storeService } from './rpc.ts';
import { onHangup, watchFiles } from './watch.ts';
import { connectPublisher, type Publisher } from './publish.ts';
import { storeMetrics } from './metrics.ts';
import type { Trigger } from './events.ts';

const USAGE = 'usage: store --data-dir DIR [--listen HOST:PORT] [--metrics HOST:PORT] [--nats URL] [--no-nats]';

async function main(): Promise<void> {
  const boot = createLogger({ service: 'store' });
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2), {
      'data-dir': { type: 'string' }, listen: { type: 'string' }, metrics: { type: 'string' },
      nats: { type: 'string' }, 'no-nats': { type: 'boolean' },
    }, USAGE);
    if (!flags['data-dir']) throw new Error(`--data-dir is required\n${USAGE}`);
  } catch (err) {
    fatal(boot, err, 'reading flags');
  }
  const dataDir = path.resolve(flags['data-dir']);

  let lock;
  let loaded;
  try {
    lock = await lockDir(dataDir, 'store');
    loaded = await loadConf(dataDir, boot);
  } catch (err) {
    await lock?.release();
    fatal(boot, err, 'loading conf.yaml');
  }
  const { conf } = loaded;
  const log = createLogger({ service: 'store', member: conf.node.name, level: conf.logging.level, format: conf.logging.format });
  const life = lifecycle(log);
  try {
    const peers = await loadPeers(dataDir, loaded.peerId, log);
    const metrics = createPromMetrics({ prefix: 'btcfed_', defaultLabels: { member: conf.node.name, service: 'store' } });
    const m = storeMetrics(metrics);

    let publisher: Publisher | undefined;
    if (!flags['no-nats']) {
      publisher = await connectPublisher({ url: flags.nats ?? conf.nats.url, member: conf.node.name, log, metrics, auth: natsOptionsFor(conf.nats, flags.nats, dataDir) });
    }
    const config = new MemberConfig(dataDir, loaded, peers, {
      log,
      emit: (event) => {
        m.observe(event);
        publisher?.publish(event);
      },
    });
    config.onChange((s) => {
      setLevel(log, s.conf.logging.level);
      m.snapshot(s);
    });
    m.snapshot(config.snapshot);
    if (peers.backup) {
      publisher?.publish({ type: 'config.rejected', keptVersion: 1, trigger: 'startup', file: path.join(dataDir, 'peers.yaml'),
        field: '', reason: `peers.yaml was invalid; restored ${peers.restoredFrom ?? 'an empty list'}`, backupPath: peers.backup });
    }

    // The store's own certificate; callers are told apart by theirs (STORE_POLICY, the private key).
    const sec = memberSecurity(conf, dataDir, 'store');
    const callers = () => ({ ...sec.check, member: config.snapshot.conf.node.name });
    const rpcLog = log.child({ module: 'rpc' });
    const server = createServer({ security: sec.server, metrics, log: rpcLog, reflection: loadBtcfedProtos });
    server.addService(StoreServiceService, guardService(StoreServiceService, storeService({ config, log: rpcLog, rejected: m.rejected, callers }),
      STORE_POLICY, { check: callers, log: rpcLog, refused: m.rejected }));
    const listen = flags.listen ?? conf.services.store.listen;
    const port = await server.bind(listen);

    const metricsAddr = flags.metrics ?? conf.services.store.metrics;
    const endpoint = metricsAddr ? await serveMetrics({ ...endpointOf(metricsAddr, 'metrics address'), registry: metrics.registry }) : undefined;

    const reload = (trigger: Trigger) => {
      config.requestReload(trigger).catch((err: unknown) => log.error({ err: errorMessage(err) }, 'reload failed'));
    };
    const watcher = watchFiles({ dataDir }, reload, log.child({ module: 'watch' }));
    const offHup = onHangup(reload);

    life.add({ name: 'grpc', run: () => server.shutdown({ graceMs: 3000 }) });
    life.add({ name: 'watch', run: () => { offHup(); watcher.close(); } });
    life.add({ name: 'metrics', run: () => endpoint?.close() });
    life.add({ name: 'nats', run: () => publisher?.close() });
    life.add({ name: 'lock', run: () => lock.release() });

    logReady(log, { dataDir, grpcPort: port, listen, peerId: loaded.peerId, version: config.snapshot.version,
      peers: config.snapshot.peers.length, metricsPort: endpoint?.port, nats: publisher ? 'on' : 'off' }, 'store ready');
  } catch (err) {
    await life.stop('start failed');
    await lock.release();
    fatal(log, err, 'starting the store');
  }
}

await main();
