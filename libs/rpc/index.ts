// Public surface of libs/rpc: gRPC servers and clients as every service uses them —
// credentials from config files (insecure only on loopback), health, reflection, graceful
// shutdown, FedError→status adapters, promise unary calls with deadlines, the caller's
// client certificate, and certificate generation. Must never expose grpc-js wiring that
// bypasses the loopback rule.

export { createServer, serviceNameOf } from './server.ts';
export type { RpcServer, RpcServerOptions, ShutdownOptions } from './server.ts';

export { createClient, call, callPatiently, deadline, waitForReady, hasStatus, DEFAULT_DEADLINE_MS, RATE_LIMIT_CODE } from './client.ts';
export type { RpcClientOptions, ClientConstructor, UnaryMethod, CallOptions } from './client.ts';

export type { ServerSecurity, ClientSecurity } from './credentials.ts';
export { serverCredentials, channelCredentials } from './credentials.ts';
export { readKeyPair, readCaBundle } from './tls-files.ts';
export { exportCertificateExpiry, CERT_EXPIRY_METRIC } from './cert-expiry.ts';

export { ATTACH_CATCHING_UP_METADATA, ATTACH_ROLE_METADATA, ATTACH_ROLES, attachRoleMetadata, attachRoleOf } from './attach-role.ts';
export type { AttachRole } from './attach-role.ts';

export { rpcHandlers, statusTable, errorCodeOf, ERROR_CODE_TRAILER } from './status.ts';
export type { RpcHandlers, RpcHandlersOptions, StatusOf, StreamHandler, UnaryHandler } from './status.ts';

export { peerCertificate, requirePeer, certificateFingerprint, normalizeFingerprint } from './peer.ts';
export type { PeerCertificate, CallWithAuthContext } from './peer.ts';

export { parseAddress, isLoopbackHost, assertInsecureAllowed, dialTarget } from './address.ts';
export type { HostPort } from './address.ts';

export { PROTO_ROOT, loadProtos, loadBtcfedProtos } from './proto.ts';

// certs.ts is deliberately not re-exported: it loads @peculiar/x509 (and the reflect-metadata polyfill),
// which only `btcfed init` and tests need. Import '#libs/rpc/certs.ts' there.
