// The HTTP endpoint Prometheus scrapes: GET /metrics (text format), and the health probes:
//   /livez   200 while the process serves requests at all (restart it when this fails);
//   /readyz  200 when the service does its job now, else 503 with the reasons, one per line
//            (a halted, paused or detached consensus service; a gateway below a quorum);
//   /healthz the same as /readyz (what monitoring and load balancers probe by default).
// Must never serve anything else or accept a request body; it may face a monitoring
// network, so it exposes counters and reasons only, never configuration or keys.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { FedError, errorMessage } from '#libs/errors/index.ts';

// node:http through require, not an ESM import: an ESM import of it builds the module's namespace
// from every export, and reading http's lazy WebSocket/fetch exports loads undici, Node's HTTP
// client, which no service uses: 10–25 ms of CPU at every start of a service that serves metrics
// (30–40 ms in a bare process; test/version.test.ts checks none loads it).
const { createServer } = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export interface ServeMetricsOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
  registry: Registry;
  /** Why the service is not ready now (empty: ready); /readyz and /healthz answer 503 with them. Default: always ready. */
  notReady?: () => readonly string[];
}

export interface MetricsEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

async function handle(opts: ServeMetricsOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  switch (path) {
    case '/metrics': {
      const body = await opts.registry.metrics();
      res.writeHead(200, { 'content-type': opts.registry.contentType }).end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    case '/livez':
      res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
      return;
    case '/readyz':
    case '/healthz': {
      const reasons = opts.notReady?.() ?? [];
      res.writeHead(reasons.length === 0 ? 200 : 503, { 'content-type': 'text/plain' })
        .end(reasons.length === 0 ? 'ready\n' : `not ready:\n${reasons.map((r) => `- ${r}`).join('\n')}\n`);
      return;
    }
    default:
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
}

export async function serveMetrics(opts: ServeMetricsOptions): Promise<MetricsEndpoint> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    handle(opts, req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`metrics unavailable: ${errorMessage(err)}\n`);
    });
  });
  // A scraper keeps connections alive; closing must not wait for it.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new FedError('METRICS_LISTEN_FAILED',
      `cannot listen on ${host}:${opts.port} for /metrics: ${errorMessage(err)}`, { host, port: opts.port }, { cause: err })));
    server.listen(opts.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
  };
}
