// Benchmark (prints figures, asserts nothing): sequential and concurrent unary round trips
// over 127.0.0.1, plaintext and mutual TLS, through createServer/createClient/call.
// Run: node_modules/.bin/node bench/rpc.ts [calls]

import { call, createClient, createServer, waitForReady, type ClientSecurity, type ServerSecurity } from '#libs/rpc/index.ts';
import { EchoClient, EchoService, echoImpl, echoRequest, silentLog, writeTestPki } from '#libs/rpc/testdata/echo.ts';
import { printMachine } from './support.ts';

const CALLS = process.argv.includes('--quick') ? 200 : Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 2000);
printMachine('gRPC unary round trips');

async function measure(label: string, server: ServerSecurity, client: ClientSecurity): Promise<void> {
  const srv = createServer({ security: server, log: silentLog });
  srv.addService(EchoService, echoImpl());
  const port = await srv.bind('127.0.0.1:0');
  const c = createClient(EchoClient, `127.0.0.1:${port}`, { security: client });
  await waitForReady(c, 5000);
  const say = c.say.bind(c);
  const req = echoRequest({ text: 'x'.repeat(64) });
  for (let i = 0; i < 200; i++) await call(say, req); // warm-up

  let t = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await call(say, req);
  const seqNs = Number(process.hrtime.bigint() - t);

  t = process.hrtime.bigint();
  const inFlight = 32;
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next++ < CALLS) await call(say, req);
  }));
  const parNs = Number(process.hrtime.bigint() - t);

  console.log(`${label.padEnd(9)} sequential: ${(seqNs / CALLS / 1000).toFixed(0)} µs/call (${Math.round(CALLS / (seqNs / 1e9))} calls/s); `
    + `${inFlight} in flight: ${Math.round(CALLS / (parNs / 1e9))} calls/s`);
  c.close();
  await srv.shutdown({ graceMs: 500 });
}

const pki = await writeTestPki();
try {
  console.log(`unary Echo round trips over 127.0.0.1, ${CALLS} calls each, node ${process.version}`);
  await measure('insecure', { mode: 'insecure' }, { mode: 'insecure' });
  await measure('mTLS',
    { mode: 'mtls', certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile },
    { mode: 'mtls', caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey, serverName: 'localhost' });
} finally {
  pki.cleanup();
}
