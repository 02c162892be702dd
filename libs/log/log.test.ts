import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger, logReady, setLevel } from '#libs/log/index.ts';
import { lifecycle } from '#libs/service/index.ts';

function capture(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

test('json lines carry service and member, and key material is redacted', async () => {
  const out = capture();
  const log = createLogger({ service: 'store', member: 'm0', destination: out.stream });
  log.info({ node: { private_key: 'SECRET' }, secretKey: 'S2', view: 3 }, 'view started');
  log.debug('hidden at info');
  await new Promise((r) => setImmediate(r));
  const lines = out.lines();
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]!);
  assert.equal(rec.service, 'store');
  assert.equal(rec.member, 'm0');
  assert.equal(rec.view, 3);
  assert.equal(rec.msg, 'view started');
  assert.ok(!lines[0]!.includes('SECRET') && !lines[0]!.includes('S2'));
});

test('text format is human-readable and the level can change at run time', async () => {
  const out = capture();
  const log = createLogger({ service: 'store', format: 'text', level: 'warn', destination: out.stream });
  log.info('not shown');
  setLevel(log, 'debug');
  log.debug({ peer: 'p1' }, 'peer dialled');
  await new Promise((r) => setImmediate(r));
  const text = out.lines().join('\n');
  assert.ok(!text.includes('not shown'));
  assert.match(text, /DEBUG.*peer dialled/);
  assert.ok(!text.trimStart().startsWith('{'));
});

test('the ready line is written at any level (supervisors wait for it)', () => {
  const out = capture();
  const log = createLogger({ service: 'gateway', member: 'm1', level: 'error', destination: out.stream });
  log.info('hidden');
  logReady(log, { grpcPort: 1 }, 'gateway ready');
  log.warn('hidden too');
  const lines = out.lines().map((l) => JSON.parse(l) as { msg: string; grpcPort?: number; member?: string });
  assert.deepEqual(lines.map((l) => l.msg), ['gateway ready']);
  assert.equal(lines[0]!.grpcPort, 1);
  assert.equal(lines[0]!.member, 'm1', 'with the service\'s bindings');
});

test('a service\'s stop writes its shutting-down and stopped lines at any level, after a reload set warn', async () => {
  const out = capture();
  const log = createLogger({ service: 'consensus', member: 'm0', level: 'info', destination: out.stream });
  setLevel(log, 'warn'); // logging.level edited to warn while it runs
  const life = lifecycle(log, { signals: false, exit: () => undefined });
  life.add({ name: 'step', run: () => log.info('a step says this: hidden') });
  await life.stop('SIGTERM');
  await new Promise((r) => setImmediate(r));
  const lines = out.lines().map((l) => JSON.parse(l) as { msg: string; reason?: string; member?: string });
  assert.deepEqual(lines.map((l) => l.msg), ['shutting down', 'stopped']);
  assert.equal(lines[0]!.reason, 'SIGTERM');
  assert.equal(lines[1]!.member, 'm0');
});
