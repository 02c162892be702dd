// `btcfed cert issue --client NAME`: a client certificate for one application of a member,
// signed by the member's CA (the CA key stays where `btcfed init` put it, outside every member
// dir; run this where it is). The application then calls the member's public ConsensusService
// with it (docs/security.md); AdminService and the internal services refuse it.

import fs from 'node:fs/promises';
import path from 'node:path';
import { FedError } from '#libs/errors/index.ts';
import { issueRoleCertificate } from '#libs/rpc/certs.ts';
import { appCertificateName } from '#libs/service/index.ts';

export interface IssueOptions {
  /** The member's name (m0). */
  member: string;
  /** The member's CA dir: ca.pem and ca-key.pem (btcfed init: <out>/ca/<member>). */
  caDir: string;
  app: string;
  /** Where the certificate, its key and the CA certificate go (created, never overwritten). */
  out: string;
  validDays?: number;
}

export async function issueClientCert(o: IssueOptions): Promise<{ cert: string; key: string; ca: string; name: string }> {
  const name = appCertificateName(o.member, o.app);
  const read = async (f: string) => {
    try {
      return await fs.readFile(path.join(o.caDir, f), 'utf8');
    } catch {
      throw new FedError('CERT_CA_MISSING', `${path.join(o.caDir, f)} not found: --ca-dir must hold the member's CA (ca.pem, ca-key.pem; btcfed init puts them in <out>/ca/<member>)`);
    }
  };
  const ca = { cert: await read('ca.pem'), key: await read('ca-key.pem') };
  const leaf = await issueRoleCertificate(ca, 'client', { commonName: name, validDays: o.validDays });
  await fs.mkdir(o.out, { recursive: true, mode: 0o700 });
  const files = { cert: path.join(o.out, `${name}.pem`), key: path.join(o.out, `${name}-key.pem`), ca: path.join(o.out, `${o.member}-ca.pem`) };
  await fs.writeFile(files.cert, leaf.cert, { mode: 0o644, flag: 'wx' });
  await fs.writeFile(files.key, leaf.key, { mode: 0o600, flag: 'wx' });
  await fs.writeFile(files.ca, ca.cert, { mode: 0o644, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err; });
  return { ...files, name };
}
