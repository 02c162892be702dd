// Test fixture for libs/rpc: the Echo service from echo.proto, typed the way ts-proto types
// generated services, plus a throwaway PKI written to a temp dir and a silent logger.
// Must never be imported by production code.

import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pino, type Logger } from 'pino';
import { FedError } from '#libs/errors/index.ts';
import { generateCa, issueClientCertificate, issueServerCertificate } from '../certs.ts';
import { peerCertificate } from '../peer.ts';
import { rpcHandlers, type RpcHandlers } from '../status.ts';
import { loadProtos } from '../proto.ts';

export interface EchoRequest { text: string; delayMs: number; failCode: string; count: number }
export interface EchoResponse { text: string; peerSubject: string }

export interface EchoServer extends grpc.UntypedServiceImplementation {
  say: grpc.handleUnaryCall<EchoRequest, EchoResponse>;
  repeat: grpc.handleServerStreamingCall<EchoRequest, EchoResponse>;
}

export interface EchoClient extends grpc.Client {
  say(request: EchoRequest, callback: (error: grpc.ServiceError | null, response: EchoResponse) => void): grpc.ClientUnaryCall;
  say(request: EchoRequest, metadata: grpc.Metadata, callback: (error: grpc.ServiceError | null, response: EchoResponse) => void): grpc.ClientUnaryCall;
  say(request: EchoRequest, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, response: EchoResponse) => void): grpc.ClientUnaryCall;
  repeat(request: EchoRequest, options?: Partial<grpc.CallOptions>): grpc.ClientReadableStream<EchoResponse>;
}

export const TESTDATA = resolve(fileURLToPath(import.meta.url), '..');
export const ECHO_SERVICE_NAME = 'btcfedtest.rpc.v1.Echo';
export const echoPackage = loadProtos(['echo.proto'], [TESTDATA]);
export const EchoService = echoPackage[ECHO_SERVICE_NAME] as unknown as grpc.ServiceDefinition<EchoServer>;
export const EchoClient = grpc.makeGenericClientConstructor(EchoService, 'Echo') as unknown as
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => EchoClient;

export const silentLog: Logger = pino({ level: 'silent' });

export function echoRequest(partial: Partial<EchoRequest>): EchoRequest {
  return { text: '', delayMs: 0, failCode: '', count: 0, ...partial };
}


/** The Echo implementation, through the adapters, with FedError codes mapped by `handlers`. */
export function echoImpl(handlers: RpcHandlers = rpcHandlers({ statusOf: () => undefined, log: silentLog })): EchoServer {
  return {
    say: handlers.unary<EchoRequest, EchoResponse>(async (req, call, signal) => {
      if (req.delayMs > 0) await sleep(req.delayMs, undefined, { signal });
      if (req.failCode === 'PLAIN_ERROR') throw new Error('secret internal detail');
      if (req.failCode) throw new FedError(req.failCode, `refused: ${req.text}`);
      return { text: req.text, peerSubject: peerCertificate(call)?.subject ?? '' };
    }),
    repeat: handlers.serverStream<EchoRequest, EchoResponse>(async function* (req, _call, signal) {
      for (let i = 0; i < req.count && !signal.aborted; i++) {
        if (req.failCode && i === 1) throw new FedError(req.failCode, `stopped at ${i}`);
        yield { text: `${req.text}#${i}`, peerSubject: '' };
        if (req.delayMs > 0) await sleep(req.delayMs, undefined, { signal });
      }
    }),
  };
}

export interface TestPki {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA, to show that a certificate from elsewhere is refused. */
  otherCaFile: string;
  otherClientCert: string;
  otherClientKey: string;
  cleanup(): void;
}

export async function writeTestPki(): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'btcfed-rpc-test-'));
  const ca = await generateCa({ commonName: 'test CA' });
  const server = await issueServerCertificate(ca, { commonName: 'echo-server' });
  const client = await issueClientCertificate(ca, { commonName: 'echo-client' });
  const otherCa = await generateCa({ commonName: 'other CA' });
  const otherClient = await issueClientCertificate(otherCa, { commonName: 'intruder' });
  const write = (name: string, pem: string) => {
    const file = join(dir, name);
    writeFileSync(file, pem, { mode: 0o600 });
    return file;
  };
  return {
    dir,
    caFile: write('ca.pem', ca.cert),
    serverCert: write('server.pem', server.cert),
    serverKey: write('server-key.pem', server.key),
    clientCert: write('client.pem', client.cert),
    clientKey: write('client-key.pem', client.key),
    otherCaFile: write('other-ca.pem', otherCa.cert),
    otherClientCert: write('other-client.pem', otherClient.cert),
    otherClientKey: write('other-client-key.pem', otherClient.key),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// gRPC's own copy of the contract (grpc-health-check's), not proto/'s: the client the tests check
// libs/rpc/health.ts with is built from what every other gRPC implementation speaks.
const healthProto = protoLoader.loadSync('health/v1/health.proto', {
  keepCase: true, enums: String, defaults: true,
  includeDirs: [resolve(fileURLToPath(import.meta.resolve('grpc-health-check')), '../../../proto')],
});
const HealthClient = grpc.makeGenericClientConstructor(
  healthProto['grpc.health.v1.Health'] as unknown as grpc.ServiceDefinition, 'Health');

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
export interface HealthClient extends grpc.Client {
  check(req: { service: string }, options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, res: { status: HealthStatus }) => void): grpc.ClientUnaryCall;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: HealthStatus }>;
  list(req: object, options: Partial<grpc.CallOptions>,
    callback: (err: grpc.ServiceError | null, res: { statuses: Record<string, { status: HealthStatus }> }) => void): grpc.ClientUnaryCall;
}

/** A plaintext client of the standard health service. */
export function healthClient(address: string): HealthClient {
  return new HealthClient(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

/** One Check call as a promise. */
export function checkHealth(client: HealthClient, service: string): Promise<HealthStatus> {
  return new Promise((resolvePromise, reject) => {
    client.check({ service }, { deadline: Date.now() + 2000 }, (err, res) => (err ? reject(err) : resolvePromise(res.status)));
  });
}

const REFLECTION_PROTOS = resolve(fileURLToPath(import.meta.resolve('@grpc/reflection')), '../../proto');
const reflectionClients = Object.fromEntries((['v1', 'v1alpha'] as const).map((v) => {
  const pkg = protoLoader.loadSync(`grpc/reflection/${v}/reflection.proto`, { keepCase: true, defaults: true, oneofs: true, includeDirs: [REFLECTION_PROTOS] });
  return [v, grpc.makeGenericClientConstructor(pkg[`grpc.reflection.${v}.ServerReflection`] as unknown as grpc.ServiceDefinition, 'ServerReflection')];
})) as Record<'v1' | 'v1alpha', grpc.ServiceClientConstructor>;

/** A reflection reply as proto-loader gives it (keepCase): the fields the tests read. */
export interface ReflectionReply {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** Sends `requests` on one reflection stream (v1 unless told), one at a time; the replies in order. */
export function askReflection(address: string, requests: readonly object[], version: 'v1' | 'v1alpha' = 'v1'): Promise<ReflectionReply[]> {
  const client = new reflectionClients[version](address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  return new Promise((resolvePromise, reject) => {
    const replies: ReflectionReply[] = [];
    const stream = (client.ServerReflectionInfo as () => grpc.ClientDuplexStream<object, ReflectionReply>).call(client);
    stream.on('data', (res: ReflectionReply) => {
      replies.push(res);
      if (replies.length < requests.length) stream.write(requests[replies.length]!);
      else stream.end();
    });
    stream.on('end', () => { client.close(); resolvePromise(replies); });
    stream.on('error', (err) => { client.close(); reject(err); });
    stream.write(requests[0]!);
  });
}

/** The service names a server lists over reflection (v1 unless told). */
export async function listServicesByReflection(address: string, version: 'v1' | 'v1alpha' = 'v1'): Promise<string[]> {
  const [reply] = await askReflection(address, [{ list_services: '' }], version);
  return (reply?.list_services_response?.service ?? []).map((s) => s.name);
}
