// Reconnect after a restart: how long after a gRPC server comes back (it was down DOWN_MS) the
// first call through an existing client channel succeeds — with the project's channel options
// (libs/rpc RECONNECT_OPTIONS) against grpc-js's defaults (1 s initial back-off growing ×1.6 up
// to 120 s), in the same run. This is what a consensus service waits after its signer restarts.
//   node bench/reconnect.ts [--down-ms 6000]

import * as grpc from '@grpc/grpc-js';
import { Health } from '../libs/rpc/health.ts';
import { createClient } from '../libs/rpc/client.ts';

const arg = process.argv.indexOf('--down-ms');
const DOWN_MS = arg > 0 ? Number(process.argv[arg + 1]) : 6000;

async function serve(port: number): Promise<grpc.Server> {
  const s = new grpc.Server();
  new Health({ '': 'SERVING' }).addToServer(s);
  await new Promise<void>((resolve, reject) => s.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return s;
}

const port = 47000 + Math.floor(Math.random() * 1000);
const GRPC_DEFAULTS = { 'grpc.initial_reconnect_backoff_ms': 1000, 'grpc.max_reconnect_backoff_ms': 120_000 };
for (const [mode, grpcOptions] of [['grpc-js defaults (baseline)', GRPC_DEFAULTS], ['RECONNECT_OPTIONS', {}]] as const) {
  let server = await serve(port);
  const client = createClient(grpc.Client, `127.0.0.1:${port}`, { security: { mode: 'insecure' }, grpcOptions });
  const ok = () => new Promise<boolean>((resolve) => client.makeUnaryRequest('/grpc.health.v1.Health/Check', (x: Buffer) => x, (x: Buffer) => x,
    Buffer.alloc(0), new grpc.Metadata(), { deadline: new Date(Date.now() + 200) }, (e) => resolve(!e)));
  await ok();
  server.forceShutdown();
  const t0 = Date.now();
  while (Date.now() - t0 < DOWN_MS) { await ok(); await new Promise((r) => setTimeout(r, 50)); }
  server = await serve(port);
  const t1 = Date.now();
  while (!(await ok())) await new Promise((r) => setTimeout(r, 20));
  console.log(`reconnect: ${mode}: server down ${DOWN_MS} ms, first successful call ${Date.now() - t1} ms after it was back`);
  client.close();
  server.forceShutdown();
}
