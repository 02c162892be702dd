// Store events onto NATS: btcfed.<member>.store.<event> with protobuf payloads. Publishing is
// best effort: the files are the source of truth, and a NATS outage must not stop a reload.

import type { Logger } from 'pino';
import { connectEvents, type Events , type NatsConnectOptions } from '#libs/events/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import { ConfigRejected, ConfigReloaded, PeersChanged, ReloadTrigger } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { StoreEvent, Trigger } from './events.ts';

export interface Publisher {
  publish(event: StoreEvent): void;
  close(): Promise<void>;
}

const TRIGGERS: Record<Trigger, ReloadTrigger> = {
  startup: ReloadTrigger.RELOAD_TRIGGER_STARTUP,
  signal: ReloadTrigger.RELOAD_TRIGGER_SIGNAL,
  file_change: ReloadTrigger.RELOAD_TRIGGER_FILE_CHANGE,
  api: ReloadTrigger.RELOAD_TRIGGER_API,
};

export function publishStoreEvent(events: Events, member: string, event: StoreEvent, now = Date.now()): void {
  switch (event.type) {
    case 'config.reloaded':
      events.publish(event.type, ConfigReloaded, {
        member, version: event.version, trigger: TRIGGERS[event.trigger], confSha256: event.confSha,
        peersSha256: event.peersSha, changedFiles: event.changedFiles, durationSeconds: event.durationSeconds, atMs: now,
      });
      return;
    case 'config.rejected':
      events.publish(event.type, ConfigRejected, {
        member, keptVersion: event.keptVersion, trigger: TRIGGERS[event.trigger], file: event.file,
        field: event.field, reason: event.reason, backupPath: event.backupPath, atMs: now,
      });
      return;
    case 'peers.changed':
      events.publish(event.type, PeersChanged, {
        member, version: event.version, added: event.added, removed: event.removed, updated: event.updated,
        count: event.count, atMs: now,
      });
      return;
    default: {
      const never: never = event;
      throw new Error(`unknown store event ${JSON.stringify(never)}`);
    }
  }
}

export async function connectPublisher(opts: { url: string; member: string; log: Logger; metrics?: Metrics; auth?: NatsConnectOptions }): Promise<Publisher> {
  const conn = await connectEvents({
    url: opts.url, name: `btcfed-store-${opts.member}`, log: opts.log.child({ module: 'nats' }),
    ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.auth ? { auth: opts.auth } : {}),
  });
  const events = conn.events(opts.member, 'store');
  return {
    publish(event) {
      try {
        publishStoreEvent(events, opts.member, event);
      } catch (err) {
        opts.log.warn({ event: event.type, err: errorMessage(err) }, 'event not published');
      }
    },
    close: () => conn.drain(),
  };
}
