// The NATS connection a service holds for events: reconnects forever (NATS being down must
// never stop a service, only delay its events), logs each connection state change once, and
// drains on shutdown so queued events still go out. Must never exit the process.

import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { noopMetrics, type Metrics } from '#libs/metrics/index.ts';
import { createEvents, type Events } from './events.ts';
import type { NatsConnectOptions } from './auth.ts';

export interface ConnectEventsOptions {
  /** nats://host:port, or several servers of one cluster. */
  url: string | string[];
  /** Client name shown by the server (e.g. "btcfed-store-m0"). */
  name: string;
  log: Logger;
  metrics?: Metrics;
  /** Between reconnect attempts. Default 1000 ms (plus the client's jitter). */
  reconnectWaitMs?: number;
  /** Servers, credentials and TLS from conf.yaml's nats section (natsConnectOptions); its servers win over `url`. */
  auth?: NatsConnectOptions;
}

export interface EventsConnection {
  readonly nc: NatsConnection;
  /** Events published as, and subscribed from, this (member, service). */
  events(member: string, service: string): Events;
  /** Flushes what was published, ends subscriptions after their pending messages, closes. */
  drain(): Promise<void>;
  /** Resolves when the connection is closed for good (with the error that closed it, if any). */
  closed(): Promise<void | Error>;
}

/** 1 while connected, 0 while not (nats_connected_state{connection}): what BtcfedNatsDown reads. */
function connectedOf(status: Status): 0 | 1 | undefined {
  switch (status.type) {
    case 'disconnect': case 'close': return 0;
    case 'reconnect': return 1;
    default: return undefined;
  }
}

function logStatus(log: Logger, status: Status): void {
  switch (status.type) {
    case 'disconnect':
      log.warn({ server: status.server }, 'nats disconnected');
      return;
    case 'reconnect':
      log.info({ server: status.server }, 'nats reconnected');
      return;
    case 'reconnecting':
    case 'ping':
      log.debug({ status: status.type }, 'nats status');
      return;
    case 'update':
      log.info({ added: status.added, deleted: status.deleted }, 'nats cluster updated');
      return;
    case 'ldm':
      log.warn({ server: status.server }, 'nats server entering lame duck mode');
      return;
    case 'error':
      log.error({ err: errorMessage(status.error) }, 'nats async error');
      return;
    case 'staleConnection':
    case 'forceReconnect':
      log.warn({ status: status.type }, 'nats reconnecting');
      return;
    case 'slowConsumer':
      log.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'nats slow consumer');
      return;
    case 'close':
      log.info('nats connection closed');
      return;
    default: {
      const never: never = status;
      log.debug({ status: never }, 'nats status');
    }
  }
}

/**
 * Connects with unlimited reconnects; with `waitOnFirstConnect` the first attempt is retried
 * the same way, so this resolves once NATS is reachable.
 */
export async function connectEvents(opts: ConnectEventsOptions): Promise<EventsConnection> {
  const { log } = opts;
  const metrics = opts.metrics ?? noopMetrics;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.url,
      ...opts.auth,
      name: opts.name,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: true,
      reconnectTimeWait: opts.reconnectWaitMs ?? 1000,
    });
  } catch (err) {
    throw new FedError('EVENTS_CONNECT_FAILED', `cannot connect to NATS at ${String(opts.url)}: ${errorMessage(err)}`,
      { url: opts.url }, { cause: err });
  }
  log.info({ server: nc.getServer(), name: opts.name }, 'nats connected');
  const connected = metrics.gauge('nats_connected_state', 'NATS connection of this service: 1 connected, 0 disconnected (reconnecting) or closed', ['connection']);
  connected.set({ connection: opts.name }, 1);
  const statusLoop = (async () => {
    for await (const status of nc.status()) {
      logStatus(log, status);
      const state = connectedOf(status);
      if (state !== undefined) connected.set({ connection: opts.name }, state);
    }
  })().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'nats status loop ended'));
  let draining: Promise<void> | undefined;
  const loops = new Set<Promise<void>>();
  const track = (done: Promise<void>) => {
    loops.add(done);
    void done.finally(() => loops.delete(done));
  };

  return {
    nc,
    events: (member, service) => createEvents({ nc, member, service, log, metrics, track }),
    drain() {
      draining ??= (async () => {
        if (!nc.isClosed() && !nc.isDraining()) {
          try {
            await nc.drain();
          } catch (err) {
            log.warn({ err: errorMessage(err) }, 'nats drain failed; closing');
            await nc.close();
          }
        }
        await nc.closed();
        // The client has handed over every message; wait for the handlers still running on them.
        await Promise.all(loops);
        await statusLoop;
      })();
      return draining;
    },
    closed: () => nc.closed(),
  };
}
