// Typed publish/subscribe of protobuf events for one (member, service). A payload that does
// not decode, or a handler that throws, is logged with its subject and counted; the
// subscription carries on. Must never let one bad message stop a subscriber.

import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import type { Metrics } from '#libs/metrics/index.ts';
import type { Codec } from './codec.ts';
import { checkPattern, parseSubject, patternOf, subject, type SubjectFilter } from './subjects.ts';

export interface EventMeta {
  subject: string;
  member: string;
  service: string;
  event: string;
}

export type EventHandler<T> = (message: T, meta: EventMeta) => void | Promise<void>;

export interface SubscriptionStats {
  received: number;
  decodeErrors: number;
  handlerErrors: number;
}

export interface EventSubscription {
  readonly pattern: string;
  /** Live counters for this subscription (also exported as metrics). */
  readonly stats: Readonly<SubscriptionStats>;
  unsubscribe(): void;
  /** Stops after the messages already received are handled. */
  drain(): Promise<void>;
  /** Resolves when the subscription has ended and its last handler has returned. */
  readonly done: Promise<void>;
}

export interface Events {
  readonly member: string;
  readonly service: string;
  /** The subject this (member, service) publishes `event` on. */
  subject(event: string): string;
  /** Encodes and publishes; throws FedError if the subject is invalid or the connection closed. */
  publish<T>(event: string, codec: Codec<T>, message: T): void;
  /**
   * Handles every message matching a pattern ("btcfed.*.consensus.block.committed") or a
   * filter ({ service: 'consensus', event: 'block.committed' }), one at a time, in order.
   */
  subscribe<T>(from: string | SubjectFilter, codec: Codec<T>, handler: EventHandler<T>, opts?: { queue?: string }): EventSubscription;
}

export interface EventsDeps {
  nc: NatsConnection;
  member: string;
  service: string;
  log: Logger;
  metrics: Metrics;
  /** Told of every subscription's `done`, so a connection drain can wait for the handlers. */
  track?: (done: Promise<void>) => void;
}

export function createEvents(deps: EventsDeps): Events {
  const { nc, member, service, log } = deps;
  subject(member, service, 'check'); // validates member and service once, up front
  const published = deps.metrics.counter('events_published_total', 'Events published, by event', ['event']);
  const received = deps.metrics.counter('events_received_total', 'Events received, by subscription pattern', ['pattern']);
  const decodeErrors = deps.metrics.counter('events_decode_errors_total', 'Events whose payload did not decode', ['pattern']);
  const handlerErrors = deps.metrics.counter('events_handler_errors_total', 'Events whose handler threw', ['pattern']);

  function publish<T>(event: string, codec: Codec<T>, message: T): void {
    const to = subject(member, service, event);
    const bytes = codec.encode(message).finish();
    try {
      nc.publish(to, bytes);
    } catch (err) {
      throw new FedError('EVENTS_PUBLISH_FAILED', `cannot publish ${to}: ${errorMessage(err)}`, { subject: to }, { cause: err });
    }
    published.inc({ event });
  }

  function subscribe<T>(from: string | SubjectFilter, codec: Codec<T>, handler: EventHandler<T>,
    opts: { queue?: string } = {}): EventSubscription {
    const pattern = typeof from === 'string' ? checkPattern(from) : patternOf(from);
    const sub = nc.subscribe(pattern, opts.queue ? { queue: opts.queue } : {});
    const stats: SubscriptionStats = { received: 0, decodeErrors: 0, handlerErrors: 0 };
    const labels = { pattern };

    const handle = async (msgSubject: string, data: Uint8Array): Promise<void> => {
      stats.received++;
      received.inc(labels);
      const meta = parseSubject(msgSubject);
      let message: T;
      try {
        if (!meta) throw new Error('subject is not btcfed.<member>.<service>.<event>');
        message = codec.decode(data);
      } catch (err) {
        stats.decodeErrors++;
        decodeErrors.inc(labels);
        log.warn({ subject: msgSubject, bytes: data.length, err: errorMessage(err) }, 'event payload does not decode; dropped');
        return;
      }
      try {
        await handler(message, { subject: msgSubject, ...meta });
      } catch (err) {
        stats.handlerErrors++;
        handlerErrors.inc(labels);
        log.error({ subject: msgSubject, err }, 'event handler failed');
      }
    };

    const done = (async () => {
      for await (const msg of sub) await handle(msg.subject, msg.data);
    })().catch((err: unknown) => log.warn({ pattern, err: errorMessage(err) }, 'event subscription ended with an error'));
    deps.track?.(done);
    log.debug({ pattern }, 'subscribed');
    return subscriptionHandle(sub, pattern, stats, done);
  }

  return { member, service, subject: (event) => subject(member, service, event), publish, subscribe };
}

function subscriptionHandle(sub: Subscription, pattern: string, stats: SubscriptionStats, done: Promise<void>): EventSubscription {
  return {
    pattern,
    stats,
    done,
    unsubscribe: () => sub.unsubscribe(),
    drain: async () => {
      if (!sub.isClosed()) await sub.drain();
      await done;
    },
  };
}
