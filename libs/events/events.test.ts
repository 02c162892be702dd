// Events against the real NATS at nats://127.0.0.1:4222: a protobuf round trip, and a
// payload that does not decode (or a handler that throws) is counted, logged with its
// subject, and does not stop the subscriber. Each run uses its own member token.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { connectEvents, type EventMeta, type EventsConnection } from './index.ts';
import { Ping, UNDECODABLE } from './testdata/ping.ts';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const member = `t${randomBytes(4).toString('hex')}`;
const logs: Record<string, unknown>[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>); } });
const metrics = createPromMetrics({ processMetrics: false });
let conn: EventsConnection;

before(async () => { conn = await connectEvents({ url: NATS_URL, name: `btcfed-events-test-${member}`, log, metrics }); });
after(async () => { await conn.drain(); });

/** Resolves with the first `n` values pushed, or rejects after `ms`. */
function collector<T>(n: number, ms = 3000): { push(v: T): void; done: Promise<T[]> } {
  const got: T[] = [];
  let resolve!: (v: T[]) => void;
  const done = new Promise<T[]>((res, rej) => {
    resolve = res;
    setTimeout(() => rej(new Error(`timed out with ${got.length}/${n}`)), ms).unref();
  });
  return { push(v) { got.push(v); if (got.length === n) resolve(got); }, done };
}

test('publish / subscribe round trip with a protobuf payload', { timeout: 15_000 }, async () => {
  const publisher = conn.events(member, 'store');
  const listener = conn.events(member, 'consensus');
  const got = collector<[Ping, EventMeta]>(2);
  const sub = listener.subscribe({ member, service: 'store', event: 'config.*' }, Ping, (msg, meta) => got.push([msg, meta]));
  await conn.nc.flush();
  publisher.publish('config.reloaded', Ping, { text: 'v2', n: 2 });
  publisher.publish('config.rejected', Ping, { text: 'bad', n: 3 });
  const [[first, meta], [second]] = await got.done as [[Ping, EventMeta], [Ping, EventMeta]];
  assert.deepEqual(first, { text: 'v2', n: 2 });
  assert.deepEqual(meta, { subject: `btcfed.${member}.store.config.reloaded`, member, service: 'store', event: 'config.reloaded' });
  assert.deepEqual(second, { text: 'bad', n: 3 });
  assert.equal(sub.stats.received, 2);
  assert.equal(publisher.subject('config.reloaded'), `btcfed.${member}.store.config.reloaded`);
  await sub.drain();
});

test('an undecodable payload is counted and logged and the subscriber carries on', { timeout: 15_000 }, async () => {
  const events = conn.events(member, 'gateway');
  const got = collector<Ping>(1);
  const sub = events.subscribe(`btcfed.${member}.gateway.peer.>`, Ping, (msg) => got.push(msg));
  await conn.nc.flush();
  const badSubject = `btcfed.${member}.gateway.peer.garbled`;
  conn.nc.publish(badSubject, UNDECODABLE);
  events.publish('peer.connected', Ping, { text: 'after the bad one', n: 1 });
  assert.deepEqual(await got.done, [{ text: 'after the bad one', n: 1 }]);
  assert.deepEqual({ ...sub.stats }, { received: 2, decodeErrors: 1, handlerErrors: 0 });
  const line = logs.find((l) => l.subject === badSubject);
  assert.ok(line, 'the bad payload is logged with its subject');
  assert.equal(line.level, 40);
  const text = await metrics.text();
  assert.match(text, new RegExp(`^events_decode_errors_total\\{pattern="btcfed\\.${member}\\.gateway\\.peer\\.>"\\} 1$`, 'm'));
  await sub.drain();
});

test('a throwing handler is counted and the next message is still handled', { timeout: 15_000 }, async () => {
  const events = conn.events(member, 'signer');
  const got = collector<number>(2);
  const sub = events.subscribe({ member, service: 'signer', event: 'refused' }, Ping, async (msg) => {
    got.push(msg.n);
    if (msg.n === 1) throw new Error('handler bug');
  });
  await conn.nc.flush();
  events.publish('refused', Ping, { text: '', n: 1 });
  events.publish('refused', Ping, { text: '', n: 2 });
  assert.deepEqual(await got.done, [1, 2]);
  assert.equal(sub.stats.handlerErrors, 1);
  await sub.drain();
});

test('drain delivers what was already published before closing', { timeout: 15_000 }, async () => {
  const local = await connectEvents({ url: NATS_URL, name: `btcfed-events-test-drain-${member}`, log, metrics });
  const events = local.events(member, 'drainer');
  const seen: number[] = [];
  events.subscribe({ member, service: 'drainer', event: 'tick' }, Ping, async (msg) => {
    await new Promise((r) => setTimeout(r, 5));
    seen.push(msg.n);
  });
  await local.nc.flush();
  for (let n = 1; n <= 20; n++) events.publish('tick', Ping, { text: '', n });
  await local.nc.flush();
  await local.drain();
  assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(local.nc.isClosed(), true);
  await local.drain(); // idempotent
  assert.ok(logs.some((l) => l.msg === 'nats connection closed'));
});
