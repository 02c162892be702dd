// Benchmark (prints figures, asserts nothing): events published and received through
// Events on the real NATS, and acknowledged durable publishes into a JetStream stream.
// Run: node_modules/.bin/node bench/events.ts [messages]

import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectEvents, ensureStream, publishDurable, subject } from '#libs/events/index.ts';
import { Ping } from '#libs/events/testdata/ping.ts';
import { printMachine } from './support.ts';

const N = process.argv.includes('--quick') ? 200 : Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 20_000);
printMachine('NATS events and JetStream publishes');
const member = `b${randomBytes(4).toString('hex')}`;
const conn = await connectEvents({ url: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'btcfed-bench', log: pino({ level: 'silent' }) });
const events = conn.events(member, 'bench');
console.log(`NATS ${conn.nc.info?.version}, ${N} messages, node ${process.version}`);

let received = 0;
let resolveAll!: () => void;
const all = new Promise<void>((r) => { resolveAll = r; });
events.subscribe({ member, service: 'bench', event: 'ping' }, Ping, () => { if (++received === N) resolveAll(); });
await conn.nc.flush();
let t = process.hrtime.bigint();
for (let n = 0; n < N; n++) events.publish('ping', Ping, { text: 'block committed', n });
await all;
let s = Number(process.hrtime.bigint() - t) / 1e9;
console.log(`core publish→subscribe (decode + handler): ${Math.round(N / s)} msgs/s`);

const jsm = await jetstreamManager(conn.nc);
const js = jetstream(conn.nc);
const stream = `BENCH_${member}`.toUpperCase();
await ensureStream(jsm, { name: stream, subjects: [`btcfed.${member}.durable.>`], storage: 'memory' });
try {
  const to = subject(member, 'durable', 'block.committed');
  const bytes = Ping.encode({ text: 'block', n: 1 }).finish();
  const M = Math.min(N, 5000);
  t = process.hrtime.bigint();
  for (let i = 0; i < M; i++) await publishDurable(js, to, bytes, { msgId: `${member}-${i}` });
  s = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(`durable publish, one at a time (awaiting each ack): ${Math.round(M / s)} msgs/s, ${(s / M * 1e6).toFixed(0)} µs each`);
} finally {
  await jsm.streams.delete(stream);
  await conn.drain();
}
