// The federation benchmark's verdicts against the performance targets: pure logic, so a plain
// unit test. The figures below are shaped like real runs of this machine (2026-11-24).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { targetRows, type RunFigures } from '../bench/targets.ts';

const n4Closed: RunFigures = {
  members: 4, openRate: undefined, throughputTxS: 9_751, committedTxs: 128_000, idleP50Ms: 234, cpuFloorMs: 99.5,
  latencyP50Ms: 3_429, latencyP99Ms: 4_530, recoveryMs: 2_306, perMemberTxUs: 42.8, rssPerMemberMiB: 130 + 235 + 237 + 492,
};

const verdicts = (r: RunFigures): Record<string, string> =>
  Object.fromEntries(targetRows(r).map((t) => [t.target.split(' ').slice(0, 3).join(' '), t.verdict]));

test('N = 4, closed loop: each target judged from its own figure; the open-loop latency is not measured', () => {
  assert.deepEqual(verdicts(n4Closed), {
    'idle block interval': 'not met', // 2.35× the floor
    'at least 25,000': 'not met',
    'open loop of': 'not measured',
    'CPU per committed': 'met',
    'recovery after kill': 'met',
    'memory per member': 'met',
  });
  const fast = verdicts({ ...n4Closed, idleP50Ms: 149, throughputTxS: 25_000 });
  assert.equal(fast['idle block interval'], 'met');
  assert.equal(fast['at least 25,000'], 'met');
});

test('N = 4, open loop: latency is judged only at 5,000 tx/s offered or more, on both percentiles', () => {
  const open = { ...n4Closed, openRate: 5_000, latencyP50Ms: 579, latencyP99Ms: 878 };
  assert.equal(verdicts(open)['open loop of'], 'met');
  assert.equal(verdicts(open)['at least 25,000'], 'not measured');
  assert.equal(verdicts({ ...open, latencyP99Ms: 2_000 })['open loop of'], 'not met');
  assert.equal(verdicts({ ...open, latencyP50Ms: 1_000 })['open loop of'], 'not met');
  assert.equal(verdicts({ ...open, openRate: 2_000 })['open loop of'], 'not measured');
  assert.equal(verdicts({ ...open, committedTxs: 0 })['open loop of'], 'not measured');
});

test('N = 21: the 1 s interval and 10,000 tx/s; nothing committed and no recovery are "not measured", not "met"', () => {
  const n21: RunFigures = { ...n4Closed, members: 21, idleP50Ms: 4_932, throughputTxS: 0, committedTxs: 0,
    perMemberTxUs: undefined, recoveryMs: undefined };
  const v = verdicts(n21);
  assert.equal(v['idle block interval'], 'not met');
  assert.equal(v['10,000 committed tx/s'], 'not met');
  assert.equal(v['CPU per committed'], 'not measured');
  assert.equal(v['recovery after kill'], 'not measured');
  assert.equal(v['open loop of'], undefined, 'the N = 4 targets do not apply');
  assert.equal(verdicts({ ...n21, idleP50Ms: 999 })['idle block interval'], 'met');
  assert.equal(verdicts({ ...n21, recoveryMs: 10_000 })['recovery after kill'], 'not met');
  assert.equal(verdicts({ ...n21, rssPerMemberMiB: 1_430 })['memory per member'], 'not met');
  assert.equal(verdicts({ ...n21, perMemberTxUs: 100.5 })['CPU per committed'], 'not met');
});

test('N ≥ 7: committed tx/s with one member dead against 80 % of the healthy figure; not measured without --dead-member', () => {
  const n7: RunFigures = { ...n4Closed, members: 7, throughputTxS: 1_000, committedTxs: 20_000 };
  assert.equal(verdicts(n7)['committed tx/s with'], 'not measured');
  assert.equal(verdicts({ ...n7, deadThroughputTxS: 800 })['committed tx/s with'], 'met');
  assert.equal(verdicts({ ...n7, deadThroughputTxS: 799 })['committed tx/s with'], 'not met');
  assert.equal(verdicts({ ...n7, throughputTxS: 0, deadThroughputTxS: 0 })['committed tx/s with'], 'not measured');
  assert.equal(verdicts({ ...n4Closed, deadThroughputTxS: 0 })['committed tx/s with'], undefined, 'not a target below N = 7');
});
