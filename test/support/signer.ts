// Harnesses for the signer in tests: the in-process LocalSigner opened from a data dir, the same
// behind a real gRPC server with mutual TLS and a RemoteSigner client, and the signer as a real
// process (CLI commands and `run`). Servers bind 127.0.0.1:0 and stop with close().

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pino } from 'pino';
import { createServer, type RpcServer } from '#libs/rpc/index.ts';
import { SignerServiceService } from '#libs/gen/btcfed/v1/signer.pb.ts';
import { createRemoteSigner, type RemoteSigner } from '../../services/signer/client.ts';
import type { SignerHarness } from '../../services/signer/contract.ts';
import { loadSignerConf, openLocalSigner } from '../../services/signer/open.ts';
import { signerService } from '../../services/signer/rpc.ts';
import type { LocalSigner, Refusal } from '../../services/signer/signer.ts';
import { makeSignerWorld, type SignerWorld, type WorldOptions } from '../../services/signer/testkit.ts';
import { ROOT, startService, type ServiceProcess } from './process.ts';

export const silent = pino({ level: 'silent' });

export async function openInProcess(world: SignerWorld, opts: { init?: boolean; onRefusal?: (r: Refusal) => void } = {}): Promise<LocalSigner> {
  const conf = await loadSignerConf(world.dir);
  return openLocalSigner({ dataDir: world.dir, conf, init: opts.init ?? false, log: silent, ...(opts.onRefusal ? { onRefusal: opts.onRefusal } : {}) });
}

export async function inProcessHarness(opts: WorldOptions = {}): Promise<SignerHarness & { local(): LocalSigner }> {
  const world = await makeSignerWorld(opts);
  let signer = await openInProcess(world, { init: true });
  return {
    world,
    signer: () => signer,
    local: () => signer,
    async restart() {
      await signer.close();
      signer = await openInProcess(world);
    },
    async close() {
      await signer.close();
      await world.cleanup();
    },
  };
}

export interface GrpcSigner { server: RpcServer; port: number; local: LocalSigner; client: RemoteSigner }

/** A LocalSigner behind mutual TLS on 127.0.0.1 and a client holding the test client certificate. */
export async function serveOverGrpc(world: SignerWorld, init: boolean, allowedClients: string[] = [], operatorClients: string[] = []): Promise<GrpcSigner> {
  const tls = world.tls!;
  const local = await openInProcess(world, { init });
  const server = createServer({ security: { mode: 'mtls', certFile: tls.serverCert, keyFile: tls.serverKey, caFile: tls.caFile }, log: silent });
  server.addService(SignerServiceService, signerService({ signer: local, log: silent, requireCertificate: true, allowedClients, operatorClients }));
  const port = await server.bind('127.0.0.1:0');
  const client = createRemoteSigner({
    address: `127.0.0.1:${port}`, validatorCount: world.n,
    security: { mode: 'mtls', caFile: tls.caFile, certFile: tls.clientCert, keyFile: tls.clientKey, serverName: 'localhost' },
  });
  await client.ready();
  return { server, port, local, client };
}

async function stopGrpc(g: GrpcSigner): Promise<void> {
  await g.client.close();
  await g.server.shutdown({ graceMs: 500 });
  await g.local.close();
}

export async function grpcHarness(opts: WorldOptions = {}): Promise<SignerHarness> {
  const world = await makeSignerWorld({ ...opts, tls: true });
  let g = await serveOverGrpc(world, true);
  return {
    world,
    signer: () => g.client,
    async restart() {
      await stopGrpc(g);
      g = await serveOverGrpc(world, false);
    },
    async close() {
      await stopGrpc(g);
      await world.cleanup();
    },
  };
}

export const SIGNER_MAIN = 'services/signer/main.ts';
const MAIN = SIGNER_MAIN;

/** Runs a CLI command to completion (not `run`). */
export function signerCli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, MAIN), ...args], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `run` as a real process; resolves once it logged 'signer ready' (or rejects when it exits first). */
export async function startSignerProcess(dir: string, extra: string[] = []): Promise<{ svc: ServiceProcess; port: number }> {
  const svc = startService(MAIN, ['run', '--data-dir', dir, '--listen', '127.0.0.1:0', ...extra]);
  const ready = await svc.waitFor((l) => l.msg === 'signer ready', 20_000);
  return { svc, port: ready.grpcPort as number };
}

/** Starts `run` expecting it to refuse: resolves with its fatal log line and exit code. */
export async function expectStartRefused(dir: string, extra: string[] = []): Promise<{ code: number | null; fatal: Record<string, unknown> }> {
  const svc = startService(MAIN, ['run', '--data-dir', dir, '--listen', '127.0.0.1:0', '--no-nats', ...extra]);
  const code = await svc.exited;
  const fatal = svc.lines.find((l) => l.level === 60) ?? { msg: svc.stderr() };
  return { code, fatal };
}

/** A RemoteSigner of `world`'s signer process on `port`, presenting the client certificate `cert`/`key` over mTLS. */
export function mtlsSignerClient(world: SignerWorld, port: number, cert: string, key: string): RemoteSigner {
  return createRemoteSigner({
    address: `127.0.0.1:${port}`, validatorCount: world.n,
    security: { mode: 'mtls', caFile: world.tls!.caFile, certFile: cert, keyFile: key, serverName: 'localhost' },
  });
}
