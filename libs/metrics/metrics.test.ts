// Metrics: names are validated at creation, and what is counted comes out of a real
// HTTP /metrics request in Prometheus text format.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { EVENT_LOOP_SAMPLE_MS, createPromMetrics, noopMetrics, serveMetrics, validateMetricName } from './index.ts';

test('counter and histogram are exported in text format over HTTP', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfedtest_', defaultLabels: { member: 'm0' } });
  const commits = metrics.counter('commits_total', 'Blocks committed.', ['kind']);
  const latency = metrics.histogram('commit_latency_seconds', 'Commit latency.', [], [0.1, 1]);
  const view = metrics.gauge('current_view', 'Current view.');
  commits.inc({ kind: 'normal' });
  commits.inc({ kind: 'normal' }, 2);
  latency.observe(0.05);
  latency.observe(0.5);
  view.set(7);

  const endpoint = await serveMetrics({ port: 0, registry: metrics.registry });
  try {
    const res = await fetch(`http://127.0.0.1:${endpoint.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const body = await res.text();
    assert.match(body, /^btcfedtest_commits_total\{kind="normal",member="m0"\} 3$/m);
    assert.match(body, /^btcfedtest_commit_latency_seconds_bucket\{le="0.1",member="m0"\} 1$/m);
    assert.match(body, /^btcfedtest_commit_latency_seconds_bucket\{le="1",member="m0"\} 2$/m);
    assert.match(body, /^btcfedtest_commit_latency_seconds_count\{member="m0"\} 2$/m);
    assert.match(body, /^btcfedtest_current_view\{member="m0"\} 7$/m);
    assert.match(body, /^process_cpu_seconds_total\{member="m0"\} /m, 'process metrics keep their standard names, with the default labels');

    const health = await fetch(`http://127.0.0.1:${endpoint.port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${endpoint.port}/other`)).status, 404);
  } finally {
    await endpoint.close();
  }
});

test('/readyz and /healthz say 503 with the reasons while the service is not ready; /livez stays 200', async () => {
  let reasons: string[] = [];
  const metrics = createPromMetrics({ processMetrics: false });
  const endpoint = await serveMetrics({ port: 0, registry: metrics.registry, notReady: () => reasons });
  const get = async (p: string) => { const r = await fetch(`http://127.0.0.1:${endpoint.port}${p}`); return { status: r.status, text: await r.text() }; };
  try {
    assert.deepEqual(await get('/readyz'), { status: 200, text: 'ready\n' });
    assert.equal((await get('/healthz')).status, 200);
    reasons = ['halted: conflicting commit at height 7', 'not attached to the gateway'];
    const ready = await get('/readyz');
    assert.equal(ready.status, 503);
    assert.match(ready.text, /halted: conflicting commit at height 7\n- not attached to the gateway/);
    assert.equal((await get('/healthz')).status, 503);
    assert.deepEqual(await get('/livez'), { status: 200, text: 'live\n' }, 'alive: restarting would not help');
  } finally {
    await endpoint.close();
  }
});

test('bad metric names throw METRIC_NAME_INVALID', () => {
  const metrics = createPromMetrics({ processMetrics: false });
  const invalid = (fn: () => unknown) => assert.throws(fn, (err) => isFedError(err, 'METRIC_NAME_INVALID'));
  invalid(() => metrics.counter('commits', 'no _total'));
  invalid(() => metrics.counter('commits_seconds', 'no _total'));
  invalid(() => metrics.gauge('queue_total', '_total on a gauge'));
  invalid(() => metrics.histogram('commit_latency', 'no unit'));
  invalid(() => metrics.histogram('commit_latency_ms', 'ms is not a base unit'));
  invalid(() => metrics.gauge('bad-name_bytes', 'dash'));
  invalid(() => metrics.histogram('x_seconds_count', 'reserved suffix'));
  invalid(() => metrics.histogram('x_seconds', 'le label', ['le']));
  invalid(() => metrics.counter('x_total', 'repeated labels', ['a', 'a']));
  invalid(() => noopMetrics.counter('commits', 'no-op validates too'));
  assert.doesNotThrow(() => validateMetricName('gauge', 'gateway_peers', ['state']));
});

test('the same metric asked for twice is shared; a conflicting one throws', () => {
  const metrics = createPromMetrics({ processMetrics: false });
  const a = metrics.counter('events_total', 'Events.', ['subject']);
  const b = metrics.counter('events_total', 'Events.', ['subject']);
  assert.equal(a, b);
  assert.throws(() => metrics.counter('events_total', 'Events.', ['other']),
    (err) => isFedError(err, 'METRIC_CONFLICT'));
});

test('histogram timer observes elapsed seconds', async () => {
  const metrics = createPromMetrics({ processMetrics: false });
  const h = metrics.histogram('wait_seconds', 'Wait.', ['op']);
  const stop = h.startTimer({ op: 'x' });
  await new Promise((r) => setTimeout(r, 20));
  const seconds = stop();
  assert.ok(seconds >= 0.015 && seconds < 5, `elapsed ${seconds}`);
  assert.match(await metrics.text(), /^wait_seconds_count\{op="x"\} 1$/m);
});

test('process metrics keep their standard names (no prefix); build_info names the version', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfed_' });
  const text = await metrics.text();
  assert.match(text, /^process_cpu_seconds_total /m, 'stock Node dashboards query process_cpu_seconds_total');
  assert.match(text, /^nodejs_heap_size_used_bytes /m);
  assert.ok(!/^btcfed_process_/m.test(text), 'not under the project prefix');
  assert.match(text, /^btcfed_build_info\{version="\d+\.\d+\.\d+",node="v\d+\.\d+\.\d+"\} 1$/m);
});

test('the event loop is sampled every EVENT_LOOP_SAMPLE_MS, not prom-client\'s 10 ms: each sample wakes an idle process', async () => {
  const metrics = createPromMetrics();
  // Several periods; a 10 ms sampler would read about 0.01 s here.
  await new Promise((r) => setTimeout(r, EVENT_LOOP_SAMPLE_MS * 4));
  const min = Number(/^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(await metrics.text())?.[1]);
  assert.ok(min >= (EVENT_LOOP_SAMPLE_MS * 0.9) / 1000, `the shortest sampled interval was ${min} s`);
});
