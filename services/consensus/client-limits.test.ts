// The client limiter on a hand-driven clock: each client's buckets and the total ones, stream
// slots per client and in all, refusals that name their limit and key, and a client map that
// stays bounded however many clients come and go.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientLimits, worthLogging, type ClientLimitsOptions } from './client-limits.ts';

const OPTS: ClientLimitsOptions = {
  maxClients: 8, streamsPerClient: 2, streamsTotal: 3, readsInFlightPerClient: 2, readsInFlightTotal: 3,
  readPerClient: { rate: 10, burst: 20 }, readTotal: { rate: 25, burst: 30 },
  submitPerClient: { rate: 100, burst: 1000 }, submitTotal: { rate: 1000, burst: 1500 },
  readCpuPerClient: { rate: 50, burst: 100 }, readCpuTotal: { rate: 80, burst: 150 },
};

function limiter(o: Partial<ClientLimitsOptions> = {}) {
  const clock = { t: 1_000_000 };
  return { clock, l: new ClientLimits({ ...OPTS, ...o }, { now: () => clock.t }) };
}

test('a client spends its burst, is refused naming the limit, and refills at its rate', () => {
  const { clock, l } = limiter();
  for (let k = 0; k < 20; k++) assert.equal(l.admit('a', 'read', 1, 'GetBlock'), undefined, `read ${k} of the burst`);
  const r = l.admit('a', 'read', 1, 'GetBlock');
  assert.equal(r?.limit, 'read_per_client');
  assert.match(r!.message, /^GetBlock: at most 10 read units a second per client, in bursts of up to 20 \(services\.consensus\.limits\.read_per_client\)/);
  assert.equal(r!.nth, 1);
  clock.t += 500; // 5 tokens at 10 a second
  for (let k = 0; k < 5; k++) assert.equal(l.admit('a', 'read', 1, 'GetBlock'), undefined);
  assert.equal(l.admit('a', 'read', 1, 'GetBlock')?.nth, 2, 'refused again, counted');
  // Reads and submissions are separate budgets.
  assert.equal(l.admit('a', 'submit', 1000, 'SubmitTransactions'), undefined);
  assert.equal(l.admit('a', 'submit', 1, 'SubmitTransaction')?.limit, 'submit_per_client');
});

test('a heavy request costs its weight and is refused whole, charging nothing', () => {
  const { l } = limiter();
  assert.equal(l.admit('a', 'read', 15, 'ListBlocks'), undefined);
  const r = l.admit('a', 'read', 10, 'ListBlocks');
  assert.equal(r?.limit, 'read_per_client');
  assert.match(r!.message, /this call costs 10/);
  for (let k = 0; k < 5; k++) assert.equal(l.admit('a', 'read', 1, 'GetStatus'), undefined, 'the refused call took nothing');
  assert.ok(l.admit('a', 'read', 1, 'GetStatus'));
});

test('the total bounds all clients together, and only then does one client crowd out another', () => {
  const { clock, l } = limiter();
  assert.equal(l.admit('a', 'read', 20, 'ListBlocks'), undefined);
  assert.equal(l.admit('b', 'read', 10, 'ListBlocks'), undefined);
  const r = l.admit('c', 'read', 1, 'GetBlock');
  assert.equal(r?.limit, 'read_total', 'c has its own burst, but all clients together spent the total');
  assert.match(r!.message, /at most 25 read units a second for all clients together, in bursts of up to 30 \(services\.consensus\.limits\.read_total\)/);
  clock.t += 200; // 5 total tokens; a and b also refill (2 each)
  assert.equal(l.admit('c', 'read', 5, 'ListBlocks'), undefined);
  assert.equal(l.admit('a', 'read', 1, 'GetBlock')?.limit, 'read_total');
  // A refusal by the total charges the client nothing either.
  clock.t += 1000;
  assert.equal(l.admit('a', 'read', 12, 'ListBlocks'), undefined, 'a refilled 2 + 10 and the total 25');
});

test('streams: at most so many per client and in all; a released slot opens another, releasing twice is no-op', () => {
  const { l } = limiter();
  const a1 = l.openStream('a', 'StreamCommits');
  const a2 = l.openStream('a', 'StreamCommits');
  assert.ok(a1.ok && a2.ok);
  const a3 = l.openStream('a', 'StreamCommits');
  assert.ok(!a3.ok);
  assert.equal(a3.refusal.limit, 'streams_per_client');
  assert.equal(a3.refusal.message, 'StreamCommits: at most 2 open streams per client (services.consensus.limits.streams_per_client)');
  const b1 = l.openStream('b', 'StreamCommits');
  assert.ok(b1.ok, 'another client still opens one');
  const b2 = l.openStream('b', 'StreamCommits');
  assert.ok(!b2.ok);
  assert.equal(b2.refusal.limit, 'streams_total');
  assert.match(b2.refusal.message, /at most 3 open streams for all clients together \(services\.consensus\.limits\.streams_total\)/);
  assert.equal(l.streams, 3);
  a1.release();
  a1.release();
  assert.equal(l.streams, 2, 'a second release frees nothing more');
  assert.ok(l.openStream('b', 'StreamCommits').ok);
  assert.ok(!l.openStream('a', 'StreamCommits').ok, 'a holds one, b two: the total is full again');
});

test('the client map stays bounded: new clients evict the least recently seen without streams', () => {
  const { l } = limiter({ maxClients: 4, streamsTotal: 3, readTotal: { rate: 1, burst: 10_000 } });
  const reading = l.startRead('r', 'GetBlock');
  assert.ok(reading.ok);
  const held = l.openStream('s', 'StreamCommits');
  assert.ok(held.ok);
  for (let k = 0; k < 1000; k++) assert.equal(l.admit(`c${k}`, 'read', 1, 'GetStatus'), undefined);
  assert.ok(l.clients <= 4, `${l.clients} clients tracked`);
  // The client with an open stream was never evicted: its slot is still counted against it.
  assert.ok(l.openStream('s', 'StreamCommits').ok);
  assert.ok(!l.openStream('s', 'StreamCommits').ok, 's already holds two');
  assert.equal(l.streams, 2);
  assert.equal(l.reads, 1, 'the client with a read in flight was never evicted either');
  reading.release();
  assert.equal(l.reads, 0);
});

test('reads in flight: at most so many per client and in all, each released once', () => {
  const { l } = limiter();
  const a = [l.startRead('a', 'ListBlocks'), l.startRead('a', 'ListBlocks')];
  assert.ok(a.every((g) => g.ok));
  const third = l.startRead('a', 'GetBlock');
  assert.ok(!third.ok);
  assert.equal(third.refusal.message, 'GetBlock: at most 2 read calls in flight per client (services.consensus.limits.reads_in_flight_per_client)');
  assert.ok(l.startRead('b', 'GetBlock').ok);
  const fourth = l.startRead('c', 'GetBlock');
  assert.ok(!fourth.ok);
  assert.equal(fourth.refusal.limit, 'reads_in_flight_total');
  if (a[0]!.ok) { a[0]!.release(); a[0]!.release(); }
  assert.equal(l.reads, 2);
  assert.ok(l.startRead('c', 'GetBlock').ok);
  assert.ok(l.openStream('c', 'StreamCommits').ok, 'streams are counted apart from reads');
});

test('a call heavier than the burst is told it never passes', () => {
  const { l } = limiter({ submitPerClient: { rate: 100, burst: 500 } });
  const r = l.admit('a', 'submit', 1000, 'SubmitTransactions');
  assert.equal(r?.limit, 'submit_per_client');
  assert.match(r!.message, /this call costs 1000: more than a burst, so it never passes; send less in one call$/);
});

test('with every tracked client holding a stream, a new client is refused (max_clients), not tracked', () => {
  // Only reachable when max_clients ≤ streams_total, which the config refuses; the limiter still holds.
  const { l } = limiter({ maxClients: 2, streamsTotal: 3, streamsPerClient: 1 });
  assert.ok(l.openStream('a', 'StreamCommits').ok);
  assert.ok(l.openStream('b', 'StreamCommits').ok);
  const r = l.admit('c', 'read', 1, 'GetStatus');
  assert.equal(r?.limit, 'max_clients');
  assert.match(r!.message, /at most 2 clients at once.*services\.consensus\.limits\.max_clients/);
  assert.equal(l.clients, 2);
});

test('sweep forgets clients whose buckets are full again and that hold no stream', () => {
  const { clock, l } = limiter({ readTotal: { rate: 1000, burst: 1000 } });
  l.admit('idle', 'read', 20, 'ListBlocks');
  l.admit('busy', 'read', 20, 'ListBlocks');
  const s = l.openStream('streaming', 'StreamCommits');
  assert.ok(s.ok);
  assert.equal(l.clients, 3);
  assert.equal(l.sweep(), 0, 'idle and busy are refilling; streaming holds a stream');
  clock.t += 1000;
  assert.equal(l.admit('busy', 'read', 10, 'ListBlocks'), undefined);
  clock.t += 1000; // idle: full again (20 after 2 s); busy: 10
  assert.equal(l.sweep(), 1);
  assert.equal(l.clients, 2, 'busy and streaming are kept');
});

test('a reload changes limits at once: a lower burst caps what a bucket holds', () => {
  const { l } = limiter();
  l.configure({ ...OPTS, readPerClient: { rate: 1, burst: 3 }, streamsPerClient: 1 });
  for (let k = 0; k < 3; k++) assert.equal(l.admit('a', 'read', 1, 'GetBlock'), undefined);
  assert.equal(l.admit('a', 'read', 1, 'GetBlock')?.limit, 'read_per_client');
  assert.ok(l.openStream('a', 'StreamCommits').ok);
  assert.ok(!l.openStream('a', 'StreamCommits').ok);
});

test('logging is for the 1st, 2nd, 4th, 8th, … refusal only', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 8, 9, 16, 1000, 1024].map(worthLogging), [true, true, false, true, false, true, false, true, false, true]);
});

test('a stream\'s reads wait for tokens instead of being refused, sharing the client\'s read budget', () => {
  const { clock, l } = limiter();
  for (let k = 0; k < 20; k++) assert.equal(l.delay('a', 'read', 1), 0, `block ${k} of the burst`);
  assert.equal(l.delay('a', 'read', 1), 100, 'one token at 10 a second: 100 ms');
  assert.equal(l.admit('a', 'read', 1, 'GetBlock')?.limit, 'read_per_client', 'the stream spent what unary reads would');
  clock.t += 100;
  assert.equal(l.delay('a', 'read', 1), 0);
  // The total paces a stream too: b has its own burst, but the total holds 30 - 21 + 2.5 = 11.5.
  for (let k = 0; k < 11; k++) assert.equal(l.delay('b', 'read', 1), 0);
  assert.equal(l.delay('b', 'read', 1), 20, 'half a total token missing, at 25 a second: 20 ms');
});

/** Admits a read of `client` against read CPU and charges it `ms`; the refusal's limit, or undefined. */
function cpuRead(l: ClientLimits, client: string, ms: number, cheap = false) {
  const g = l.admitReadCpu(client, 'ListBlocks', cheap);
  if (!g.ok) return g.refusal;
  g.charge(ms);
  return undefined;
}

test('read CPU is charged after the fact: a read may overdraw once, then its client is refused until it refills', () => {
  const { clock, l } = limiter();
  const g = l.admitReadCpu('a', 'ListBlocks', false);
  assert.ok(g.ok, 'a new client starts with its burst');
  assert.ok(l.admitReadCpu('a', 'ListBlocks', false).ok, 'admission charges nothing');
  g.charge(60);
  g.charge(70); // one call timed in sections: 130 ms, 30 beyond the burst of 100
  const r = l.admitReadCpu('a', 'ListBlocks', false);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.refusal.limit, 'read_cpu_per_client');
  assert.match(!r.ok ? r.refusal.message : '', /^ListBlocks: reads may take at most 50 ms of CPU a second per client, in bursts of up to 100 ms \(services\.consensus\.limits\.read_cpu_per_client\); spent, try again in 0\.6 s$/);
  clock.t += 500; // 25 ms back: still 5 in debt
  assert.equal(cpuRead(l, 'a', 1)?.limit, 'read_cpu_per_client');
  clock.t += 200; // 5 ms above zero
  assert.equal(cpuRead(l, 'a', 1), undefined, 'refilled above zero: admitted');
  // Another client has its own budget; the total (150) took 131 + …
  assert.equal(cpuRead(l, 'b', 10), undefined);
});

test('read CPU: the total refuses every client once all reads together overdrew it; a cheap call only by the total', () => {
  const { clock, l } = limiter();
  assert.equal(cpuRead(l, 'a', 90), undefined);
  assert.equal(cpuRead(l, 'b', 90), undefined); // the total (150) is 30 in debt; b's own (100) still holds 10
  const r = l.admitReadCpu('b', 'GetBlock', false);
  assert.equal(!r.ok && r.refusal.limit, 'read_cpu_total');
  assert.match(!r.ok ? r.refusal.message : '', /at most 80 ms of CPU a second for all clients together, in bursts of up to 150 ms \(services\.consensus\.limits\.read_cpu_total\)/);
  assert.equal(cpuRead(l, 'c', 1)?.limit, 'read_cpu_total', 'a client that spent nothing is refused by the total');
  assert.equal(cpuRead(l, 'c', 1, true)?.limit, 'read_cpu_total', 'a cheap call too');
  clock.t += 500; // total +40: 10 above zero
  assert.equal(cpuRead(l, 'c', 1), undefined);
  // A client in debt of its own may still make a cheap call, which is charged.
  assert.equal(cpuRead(l, 'a', 100), undefined); // a: 35 - 100 = -65; the total: 9 - 100 = -91
  clock.t += 1200; // a: -5, the total: +5
  assert.equal(cpuRead(l, 'a', 1)?.limit, 'read_cpu_per_client');
  assert.equal(cpuRead(l, 'a', 2, true), undefined, 'GetStatus passes its own debt');
  clock.t += 100; // a: -7 + 5, still in debt: the cheap call was charged
  assert.equal(cpuRead(l, 'a', 1)?.limit, 'read_cpu_per_client');
});

test('read CPU: debt is bounded by a burst, a reload keeps it and caps what a bucket holds, sweep keeps a client in debt', () => {
  const { clock, l } = limiter();
  assert.equal(cpuRead(l, 'a', 10_000), undefined);
  clock.t += 1500; // owed at most one burst (100): 75 back, still in debt
  assert.equal(cpuRead(l, 'a', 1)?.limit, 'read_cpu_per_client');
  assert.equal(l.sweep(), 0, 'a client in debt is not forgotten (it would come back with a fresh burst)');
  l.configure({ ...OPTS, readCpuPerClient: { rate: 1000, burst: 5 }, readCpuTotal: { rate: 1000, burst: 5 } });
  assert.equal(cpuRead(l, 'a', 1)?.limit, 'read_cpu_per_client', 'the debt outlives the reload');
  clock.t += 100; // at the new rate: 100 ms back, capped at the new burst of 5
  assert.equal(cpuRead(l, 'a', 5), undefined);
  assert.equal(cpuRead(l, 'a', 1)?.limit, 'read_cpu_per_client', 'the new burst of 5 was all it held');
  clock.t += 10;
  assert.equal(l.sweep(), 1, 'refilled to its burst: forgotten');
});
