// Refusals onto NATS as btcfed.<member>.signer.signer.refused (event "signer.refused", payload
// SignerRefused). Best effort by design: the journal and the security log are the record; NATS
// being down must never stop or slow the signer, so the connection is made in the background.
// Must never publish key material or a signature.

import type { Logger } from 'pino';
import { connectEvents, type EventsConnection , type NatsConnectOptions } from '#libs/events/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import { SignerRefused } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { Phase as PhaseMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import type { Refusal } from './signer.ts';

export const REFUSED_EVENT = 'signer.refused';

export interface RefusalPublisher {
  publish(r: Refusal): void;
  close(): Promise<void>;
}

export function toRefusedEvent(member: string, r: Refusal, now = Date.now()): SignerRefused {
  return { member, rule: r.rule, reason: r.reason, requestType: r.kind, view: r.view, phase: r.phase as PhaseMsg, atMs: now };
}

export function connectRefusalPublisher(opts: { url: string; member: string; log: Logger; metrics?: Metrics; auth?: NatsConnectOptions }): RefusalPublisher {
  let conn: EventsConnection | undefined;
  let closed = false;
  const connecting = connectEvents({ url: opts.url, name: `btcfed-signer-${opts.member}`, log: opts.log, ...(opts.metrics ? { metrics: opts.metrics } : {}), ...(opts.auth ? { auth: opts.auth } : {}) })
    .then((c) => {
      conn = c;
      if (closed) void c.drain();
    })
    .catch((err: unknown) => opts.log.warn({ err: errorMessage(err) }, 'nats unavailable: refusals are journaled and logged only'));
  return {
    publish(r) {
      if (!conn) {
        opts.log.warn({ rule: r.rule }, 'nats not connected: signer.refused not published');
        return;
      }
      try {
        conn.events(opts.member, 'signer').publish(REFUSED_EVENT, SignerRefused, toRefusedEvent(opts.member, r));
      } catch (err) {
        opts.log.warn({ err: errorMessage(err) }, 'publishing signer.refused failed');
      }
    },
    async close() {
      closed = true;
      if (conn) await conn.drain();
      else void connecting;
    },
  };
}
