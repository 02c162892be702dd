// The certificate expiry a real service exports: a store started from a `btcfed init` member dir
// (mutual TLS), scraped over HTTP, shows btcfed_tls_certificate_expiry_timestamp_seconds for the
// certificate it presents and the CA it trusts, at their notAfter; after `btcfed cert renew` and
// a restart, the new date. Also the unit: a server given metrics exports them, one without TLS none.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { createServer } from '#libs/rpc/index.ts';
import { startService } from './support/process.ts';

const root = path.resolve(import.meta.dirname, '..');
const btcfed = (cwd: string, ...args: string[]) =>
  spawnSync(process.execPath, [path.join(root, 'cli/main.ts'), ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
const METRIC = 'btcfed_tls_certificate_expiry_timestamp_seconds';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-cert-expiry-'));
  const made = btcfed(dir, 'init', '--out', 'fed', '--members', '1', '--base-port', '27600');
  assert.equal(made.status, 0, made.stderr);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const notAfter = (file: string) => Math.floor(Date.parse(new X509Certificate(fs.readFileSync(file)).validTo) / 1000);

/** The value of the series of METRIC whose labels hold every `kv`, from a Prometheus text page. */
function series(text: string, ...kv: string[]): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${METRIC}{`) && kv.every((s) => l.includes(s)));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

async function scrapeStore(): Promise<string> {
  const store = startService('services/store/main.ts', ['--data-dir', path.join(dir, 'fed/m0'), '--listen', '127.0.0.1:0', '--no-nats', '--metrics', '127.0.0.1:0']);
  try {
    const ready = await store.waitFor((l) => l.msg === 'store ready', 30_000);
    return await (await fetch(`http://127.0.0.1:${ready.metricsPort as number}/metrics`)).text();
  } finally {
    await store.stop();
  }
}

test('a store with mutual TLS exports when its certificate and its CA expire; after cert renew and a restart, the new date', { timeout: 120_000 }, async () => {
  const certFile = path.join(dir, 'fed/m0/tls/store.pem');
  const caFile = path.join(dir, 'fed/m0/tls/ca.pem');
  const text = await scrapeStore();
  assert.match(text, new RegExp(`# TYPE ${METRIC} gauge`));
  assert.equal(series(text, 'kind="certificate"', `file="${certFile}"`, 'subject="m0-store"', 'service="store"', 'member="m0"'), notAfter(certFile));
  assert.equal(series(text, 'kind="ca"', `file="${caFile}"`, 'subject="btcfed m0 CA"'), notAfter(caFile));

  const renewed = btcfed(dir, 'cert', 'renew', '--dir', 'fed/m0', '--ca-dir', 'fed/ca/m0', '--valid-days', '90');
  assert.equal(renewed.status, 0, renewed.stderr);
  const after = await scrapeStore();
  const until = series(after, 'kind="certificate"', `file="${certFile}"`);
  assert.equal(until, notAfter(certFile));
  assert.ok(Math.abs(until! - Date.now() / 1000 - 90 * 86_400) < 300, 'the renewed certificate, 90 days');
});

test('createServer exports the expiry of what it loads only when given metrics and TLS', async () => {
  const log = pino({ level: 'silent' });
  const tls = { mode: 'mtls' as const, certFile: path.join(dir, 'fed/m0/tls/gateway.pem'), keyFile: path.join(dir, 'fed/m0/tls/gateway-key.pem'), caFile: path.join(dir, 'fed/m0/tls/ca.pem') };
  const metrics = createPromMetrics({ prefix: 'btcfed_' });
  createServer({ security: tls, log, metrics });
  const text = await metrics.registry.metrics();
  assert.equal(series(text, 'kind="certificate"', 'subject="m0-gateway"'), notAfter(tls.certFile));
  const plain = createPromMetrics({ prefix: 'btcfed_' });
  createServer({ security: { mode: 'insecure' }, log, metrics: plain });
  assert.equal(series(await plain.registry.metrics(), 'kind='), undefined);
});
