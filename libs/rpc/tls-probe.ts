// Why a TLS connection to a gRPC server fails, in words an operator can act on. grpc-js reports a
// failed handshake only as "no connection" (a client waiting for the channel saw a 5 s "no
// answer"); this opens one plain TLS connection with the client's own files and server name and
// says what did not match: the server's certificate is not signed by the CA we trust
// (RPC_TLS_SERVER_UNTRUSTED), has expired (RPC_TLS_SERVER_EXPIRED), does not name the host we
// dialled (RPC_TLS_NAME_MISMATCH), or the server refused our client certificate
// (RPC_TLS_CLIENT_REJECTED). Must never send anything but a handshake, nor put key material in an error.

import { isIP } from 'node:net';
import tls from 'node:tls';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { parseAddress } from './address.ts';
import type { ClientSecurity } from './credentials.ts';
import { readPemFile } from './tls-files.ts';

const nameOf = (subject: tls.PeerCertificate['subject'] | undefined): string =>
  subject ? Object.entries(subject).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(', ') : '(none)';

/** How long after the handshake a refusal of our certificate may still arrive (TLS 1.3 sends it then). */
const ALERT_WAIT_MS = 500;

/**
 * Connects to `target` as the client would and resolves to the FedError naming what did not
 * match, or undefined when TLS is fine (or the server is not there at all: not a TLS problem).
 * Rejects (never throws) when the client's own files cannot be read: it runs from grpc-js's
 * connectivity callbacks, where a throw would end the process, while the channel itself holds the
 * credentials it read when it was made.
 */
export async function probeTls(security: ClientSecurity, target: string, timeoutMs = 3000): Promise<FedError | undefined> {
  if (security.mode === 'insecure') return undefined;
  const { host, port } = parseAddress(target);
  const expected = security.serverName ?? host;
  const ca = security.caFile ? readPemFile(security.caFile, 'CA certificate') : undefined;
  const own = security.mode === 'mtls' ? { cert: readPemFile(security.certFile, 'certificate'), key: readPemFile(security.keyFile, 'private key') } : {};
  const where = `the server at ${target}`;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (err: FedError | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(err);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    const socket = tls.connect({
      host, port, ...(ca ? { ca } : {}), ...own, ALPNProtocols: ['h2'],
      servername: isIP(expected) ? 'localhost' : expected,
      rejectUnauthorized: false, // checked below, to say what failed
    });
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      const subject = nameOf(peer?.subject);
      const issuer = nameOf(peer?.issuer);
      const why = socket.authorizationError as unknown as string | Error | null;
      const reason = typeof why === 'string' ? why : (why as { code?: string } | null)?.code ?? (why ? errorMessage(why) : undefined);
      if (reason === 'CERT_HAS_EXPIRED') {
        return finish(new FedError('RPC_TLS_SERVER_EXPIRED', `${where} presents a certificate (${subject}) that expired on ${peer.valid_to}`, { target, subject }));
      }
      if (reason !== undefined && reason !== 'ERR_TLS_CERT_ALTNAME_INVALID') { // the name is checked below, against the host dialled
        return finish(new FedError('RPC_TLS_SERVER_UNTRUSTED',
          `${where} presents a certificate (${subject}, issued by ${issuer}) not signed by the CA this client trusts (${security.caFile ?? 'the system roots'}; ${reason}): it belongs to another member or CA`,
          { target, subject, issuer, reason, caFile: security.caFile }));
      }
      const mismatch = tls.checkServerIdentity(expected, peer);
      if (mismatch) {
        return finish(new FedError('RPC_TLS_NAME_MISMATCH',
          `${where} presents a certificate (${subject}) that does not name ${expected}, the host dialled (it names ${peer.subjectaltname ?? 'nothing'}): ${mismatch.message}`,
          { target, expected, subject, names: peer.subjectaltname }));
      }
      // Our certificate is judged by the server after the handshake (TLS 1.3): its first bytes (an
      // HTTP/2 server speaks first), or an alert, or a close without a word.
      handshook = true;
      socket.once('data', () => finish(undefined));
      setTimeout(() => finish(undefined), ALERT_WAIT_MS);
    });
    const rejected = (how: string) => {
      const mine = security.mode === 'mtls' ? `our client certificate ${security.certFile}` : 'this client (it sent no certificate)';
      return new FedError('RPC_TLS_CLIENT_REJECTED',
        `${where} rejected ${mine} (${how}): the server trusts another CA, or wants a certificate of its own member`,
        { target, certFile: security.mode === 'mtls' ? security.certFile : undefined });
    };
    let handshook = false;
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const msg = errorMessage(err);
      if (/alert|certificate required|bad certificate|unknown ca/i.test(msg) || /ERR_SSL_.*(ALERT|CERTIFICATE)/.test(err.code ?? '')) {
        return finish(rejected(msg.replace(/^.*?(alert|certificate required)/i, '$1')));
      }
      // After our handshake, a reset is the server dropping us: what it does with a certificate it refuses.
      finish(handshook ? rejected(`connection dropped after the handshake: ${err.code ?? msg}`) : undefined); // else refused or unreachable: not TLS
    });
    socket.once('close', () => finish(handshook ? rejected('connection closed right after the handshake, unanswered') : undefined));
  });
}
