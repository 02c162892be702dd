// The expiry of every certificate a gRPC server loaded, as a gauge Prometheus alerts on before
// a certificate runs out (deploy/prometheus/alerts.yml BtcfedCertificateExpiringSoon):
// btcfed_tls_certificate_expiry_timestamp_seconds{kind, file, subject}, the notAfter in Unix
// seconds, kind "certificate" (what the service presents) or "ca" (what it trusts). The files
// are read at start and so is this: a renewed certificate shows once the service restarted.
// Must never read or export anything of a private key.

import { X509Certificate } from 'node:crypto';
import type { Metrics } from '#libs/metrics/index.ts';
import type { ClientSecurity, ServerSecurity } from './credentials.ts';
import { certificatesIn } from './tls-files.ts';

export const CERT_EXPIRY_METRIC = 'tls_certificate_expiry_timestamp_seconds';

/** The common name of a certificate ("m0-store"), or its whole subject when it has none. */
function commonName(cert: X509Certificate): string {
  const lines = cert.subject.split('\n');
  return lines.find((l) => l.startsWith('CN='))?.slice(3) ?? lines.join(', ');
}

/** Sets the gauge for the leaf certificate and every CA certificate `security` names; nothing without TLS. */
export function exportCertificateExpiry(metrics: Metrics, security: ServerSecurity | ClientSecurity): void {
  if (security.mode === 'insecure') return;
  const gauge = metrics.gauge(CERT_EXPIRY_METRIC, 'When each TLS certificate this service loaded expires (notAfter), Unix seconds; kind certificate (presented) or ca (trusted)',
    ['kind', 'file', 'subject']);
  const set = (kind: 'certificate' | 'ca', file: string, certs: X509Certificate[]) => {
    for (const cert of certs) gauge.set({ kind, file, subject: commonName(cert) }, Math.floor(Date.parse(cert.validTo) / 1000));
  };
  if ('certFile' in security && security.certFile) set('certificate', security.certFile, certificatesIn(security.certFile, 'certificate').slice(0, 1));
  if ('caFile' in security && security.caFile) set('ca', security.caFile, certificatesIn(security.caFile, 'CA certificate'));
}
