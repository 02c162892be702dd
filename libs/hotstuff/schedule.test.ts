import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ANCHOR_LAG, LeaderSchedule, MIN_SLOTS, PROBE_EVERY, STALE_ROTATIONS, historyViews, isProbeView, mayLead, type CommittedView } from './schedule.ts';
import { roundRobinLeader } from './quorum.ts';
import { Prng } from './sim/prng.ts';

/** A chain where every view commits its block, proposed by the schedule's own leader, except the views `fails` says. */
function run(n: number, views: number, fails: (view: number, leader: number) => boolean): { schedule: LeaderSchedule; record: CommittedView[]; leaders: number[] } {
  const schedule = new LeaderSchedule(n);
  const record: CommittedView[] = [];
  const leaders: number[] = [];
  for (let v = 1; v <= views; v++) {
    const leader = schedule.leaderOf(v);
    leaders[v] = leader;
    if (fails(v, leader)) continue;
    const c = { view: v, proposer: leader };
    record.push(c);
    schedule.committed(c);
  }
  return { schedule, record, leaders };
}

test('a healthy federation keeps plain round robin', () => {
  for (const n of [1, 4, 7, 21]) {
    const { leaders } = run(n, 40 * n, () => false);
    for (let v = 1; v <= 40 * n; v++) assert.equal(leaders[v], roundRobinLeader(v, n), `N=${n} view ${v}`);
  }
});

test('a dead member is skipped after MIN_SLOTS of its views, and only probe rotations give it its view back', () => {
  const n = 4;
  const dead = 3;
  const { leaders } = run(n, 400, (_, leader) => leader === dead);
  const led = leaders.map((l, v) => (l === dead ? v : -1)).filter((v) => v > 0);
  // Its own views 3, 7, … (MIN_SLOTS of them), then only its views in probe rotations (every PROBE_EVERY-th of N views).
  assert.deepEqual(led.slice(0, MIN_SLOTS), Array.from({ length: MIN_SLOTS }, (_, i) => 3 + n * i));
  for (const v of led.slice(MIN_SLOTS)) assert.ok(isProbeView(v, n), `view ${v} given to the dead member outside a probe rotation`);
  assert.equal(led.length, MIN_SLOTS + Math.floor(400 / (n * PROBE_EVERY)), 'once per probe cycle after the first MIN_SLOTS');
  // Its views go to the next member in the ring.
  assert.equal(leaders[3 + n * MIN_SLOTS + n], 0);
  assert.equal(leaders[3 + n * MIN_SLOTS + 2 * n], 0);
});

test('a member that is back proposes in the probe rotation and is in the rotation again', () => {
  const n = 4;
  const backAt = 100;
  const { leaders } = run(n, 300, (v, leader) => leader === 2 && v < backAt);
  const probe = leaders.findIndex((l, v) => v >= backAt && l === 2);
  assert.ok(isProbeView(probe, n), `first view led after its return (${probe}) is in a probe rotation`);
  for (let v = probe + ANCHOR_LAG + 1; v <= 300; v++) assert.equal(leaders[v], roundRobinLeader(v, n), `view ${v}`);
});

test('at most f members are skipped, the stalest first', () => {
  const n = 7; // f = 2
  const lastOwn = new Map([[1, -1], [4, 102], [5, 110]]); // 1 never proposed; 4 last at view 102, 5 at view 110
  const r = 26; // views 182–188: not a probe rotation
  const s = new LeaderSchedule(n);
  for (let v = 1; v <= n * r - ANCHOR_LAG; v++) {
    const rr = roundRobinLeader(v, n);
    if (v > (lastOwn.get(rr) ?? Infinity)) continue;
    s.committed({ view: v, proposer: rr });
  }
  assert.equal(isProbeView(n * r, n), false);
  assert.deepEqual([...s.skippedIn(n * r + 1)], [1, 4]);
  assert.equal(s.leaderOf(n * r + 5), 5, 'the third silent member keeps its view: more than f are never skipped');
  assert.equal(s.leaderOf(n * r + 4), 5, "4's view goes to the next member not skipped (5, itself silent but not skipped)");
  assert.equal(s.leaderOf(n * r + 1), 2, "1's too");
  assert.equal(s.leaderOf(n * r + 2), 2);
});

test('the record above the anchor does not change a view\'s leader: members a commit apart agree', () => {
  const n = 4;
  const { record } = run(n, 120, (_, leader) => leader === 1);
  for (let v = 60; v <= 120; v++) {
    const anchor = v - ANCHOR_LAG;
    const behind = new LeaderSchedule(n, record.filter((c) => c.view <= anchor));
    const ahead = new LeaderSchedule(n, record.filter((c) => c.view <= v - 1));
    assert.equal(behind.leaderOf(v), ahead.leaderOf(v), `view ${v}`);
  }
});

test('a restart from historyViews(N) of the record computes what the whole record does', () => {
  const rng = new Prng(7);
  for (const n of [4, 7, 21]) {
    const down = new Set([rng.int(n), rng.int(n)]);
    const { schedule, record } = run(n, 30 * n, (v, leader) => (down.has(leader) && v % 3 !== 0) || rng.next() < 0.1);
    const tip = record[record.length - 1]!.view;
    const restarted = new LeaderSchedule(n, record.filter((c) => c.view > tip - historyViews(n)));
    for (let v = tip + 1; v <= tip + ANCHOR_LAG + 2 * n; v++) assert.equal(restarted.leaderOf(v), schedule.leaderOf(v), `N=${n} view ${v}`);
  }
});

test('with no commit for STALE_ROTATIONS rotations before the anchor, plain round robin: members with different tips agree again', () => {
  const n = 4;
  const { record } = run(n, 100, (_, leader) => leader === 3);
  const a = new LeaderSchedule(n, record);
  const b = new LeaderSchedule(n, record.slice(0, -1)); // one commit behind
  const tip = record[record.length - 1]!.view;
  const v = tip + ANCHOR_LAG + STALE_ROTATIONS * n + 1;
  for (let w = v; w < v + 3 * n; w++) {
    assert.equal(a.leaderOf(w), roundRobinLeader(w, n), `view ${w}`);
    assert.equal(b.leaderOf(w), roundRobinLeader(w, n), `view ${w}`);
  }
  assert.deepEqual([...a.skippedIn(tip + ANCHOR_LAG + 1 + (isProbeView(tip + ANCHOR_LAG + 1, n) ? n : 0))], [3], 'before the stale limit, 3 is skipped');
});

test('whatever the record, the leader is one mayLead allows (the signer\'s check)', () => {
  const rng = new Prng(11);
  for (const n of [2, 4, 5, 7, 10, 21]) {
    for (let trial = 0; trial < 20; trial++) {
      const { leaders } = run(n, 15 * n, () => rng.next() < rng.next());
      for (let v = 1; v < leaders.length; v++) assert.ok(mayLead(v, leaders[v]!, n), `N=${n} view ${v} leader ${leaders[v]}`);
    }
  }
  assert.equal(mayLead(5, -1, 4), false);
  assert.equal(mayLead(5, 4, 4), false);
  assert.equal(mayLead(5, 1.5, 4), false);
});

test('garbage in the record (a proposer outside the set, views out of order) changes nothing', () => {
  const n = 4;
  const s = new LeaderSchedule(n);
  const clean = new LeaderSchedule(n);
  for (let v = 1; v <= 80; v++) {
    if (v % 4 === 3) continue;
    s.committed({ view: v, proposer: v % 4 });
    clean.committed({ view: v, proposer: v % 4 });
    s.committed({ view: v - 1, proposer: 3 }); // older view: ignored
    if (v % 10 === 0) s.committed({ view: v, proposer: 9 }); // repeated view: ignored
  }
  for (let v = 81; v < 100; v++) assert.equal(s.leaderOf(v), clean.leaderOf(v), `view ${v}`);
  assert.equal(clean.leaderOf(83), 0, 'validator 3 is skipped');
});

test('a member that dies after leading well is skipped after its next MIN_SLOTS views, not after a whole window', () => {
  const n = 7;
  const diesAt = 300;
  const { leaders } = run(n, 600, (v, leader) => leader === 4 && v >= diesAt);
  const failed = leaders.map((l, v) => (v >= diesAt && l === 4 ? v : -1)).filter((v) => v > 0);
  const outsideProbes = failed.filter((v) => !isProbeView(v, n));
  assert.equal(outsideProbes.length, MIN_SLOTS, `its views after death outside probe rotations: ${outsideProbes.join(', ')}`);
  assert.ok(outsideProbes.every((v) => v < diesAt + MIN_SLOTS * n + ANCHOR_LAG + n), `skipped within ${MIN_SLOTS} rotations (${outsideProbes.join(', ')})`);
});

test('one failed view is no reason: a member whose views fail now and then keeps its turns', () => {
  const n = 4;
  // Validator 2's views fail two times out of three it leads: never MIN_SLOTS in a row.
  let turns = 0;
  const { leaders } = run(n, 400, (_, leader) => leader === 2 && ++turns % 3 !== 0);
  for (let v = 1; v <= 400; v++) if (v % n === 2) assert.equal(leaders[v], 2, `view ${v}`);
});
