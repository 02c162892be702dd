// `btcfed init`: the data dirs of an N-member federation on one machine — each member's
// conf.yaml (libp2p key, ports, TLS files, the genesis validator set), peers.yaml (every other
// member), and its signer's dir (signer.yaml, the encrypted SLH-DSA key, the passphrase file,
// TLS files). Least privilege from the start: each member has its own CA, and each of its
// services, its operator and its client applications their own certificate (certs.ts, named
// `<member>-<role>`); the signer admits only its member's consensus certificate. The CA keys go
// to <out>/ca/<member>/, outside every dir a service reads: move them offline after init.
// Never overwrites an existing federation: it refuses a non-empty output dir.

import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { generateIdentity, type Identity } from '#libs/config/index.ts';
import { createSlhDsa, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { generateCa, issueRoleCertificate, type CertificatePem } from '#libs/rpc/certs.ts';
import { certificateFingerprint } from '#libs/rpc/index.ts';
import { certificateName, ROLE_USAGE, SERVICE_PLACEHOLDER, type ServiceRole } from '#libs/service/index.ts';
import { sealKey, writeNewKeyFile } from '../services/signer/keyfile.ts';
import { markFreshSigner } from './fresh.ts';

export interface InitOptions {
  members: number;
  out: string;
  basePort: number;
  chainId: string;
  paramSet: ParamSet;
  /** View timeout base; devnets on one machine want it short. */
  baseTimeout: string;
  logFormat: 'json' | 'text';
  natsUrl: string;
  /**
   * Extra names (DNS or IP) for every server certificate, besides localhost, 127.0.0.1 and ::1,
   * for members whose services run on other hosts. Default none (one machine).
   */
  serverNames?: readonly string[];
}

/** Ports of member i: ten consecutive ones from basePort + 10·i. */
export function memberPorts(basePort: number, i: number) {
  const p = basePort + 10 * i;
  return { store: p, gateway: p + 1, consensus: p + 2, admin: p + 3, signer: p + 4, libp2p: p + 5,
    storeMetrics: p + 6, gatewayMetrics: p + 7, consensusMetrics: p + 8, signerMetrics: p + 9 };
}

export const memberName = (i: number): string => `m${i}`;

interface Member {
  name: string; dir: string; identity: Identity; publicKey: string; ports: ReturnType<typeof memberPorts>;
  /** SHA-256 fingerprints of the member's certificates, by role. */
  fingerprints: Record<ServiceRole, string>;
  /** Kept for callers of the first version: the operator's fingerprint. */
  operator: string;
}

async function writeFile(file: string, text: string, mode = 0o600): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, text, { mode, flag: 'wx' });
}

/** Where init keeps member `name`'s CA: beside the member dirs, never inside one. */
export const caDir = (out: string, name: string): string => path.join(out, 'ca', name);

/** conf.yaml's tls section: the member's CA, and each service's own files through {service}. */
const TLS_SECTION = { ca_file: 'tls/ca.pem', cert_file: `tls/${SERVICE_PLACEHOLDER}.pem`, key_file: `tls/${SERVICE_PLACEHOLDER}-key.pem` };

/** The member's CA, every role's certificate (signer's in signer/tls/), and their fingerprints. */
async function writeMemberTls(out: string, dir: string, name: string, serverNames: readonly string[]): Promise<Record<ServiceRole, string>> {
  const ca = await generateCa({ commonName: `btcfed ${name} CA` });
  await writeFile(path.join(caDir(out, name), 'ca.pem'), ca.cert, 0o644);
  await writeFile(path.join(caDir(out, name), 'ca-key.pem'), ca.key);
  await writeFile(path.join(dir, 'tls', 'ca.pem'), ca.cert, 0o644);
  await writeFile(path.join(dir, 'signer', 'tls', 'ca.pem'), ca.cert, 0o644);
  const fingerprints = {} as Record<ServiceRole, string>;
  for (const role of Object.keys(ROLE_USAGE) as ServiceRole[]) {
    const leaf: CertificatePem = await issueRoleCertificate(ca, ROLE_USAGE[role], { commonName: certificateName(name, role), names: serverNames });
    if (role === 'signer') {
      await writeFile(path.join(dir, 'signer', 'tls', 'cert.pem'), leaf.cert, 0o644);
      await writeFile(path.join(dir, 'signer', 'tls', 'key.pem'), leaf.key);
    } else {
      await writeFile(path.join(dir, 'tls', `${role}.pem`), leaf.cert, 0o644);
      await writeFile(path.join(dir, 'tls', `${role}-key.pem`), leaf.key);
    }
    fingerprints[role] = certificateFingerprint(leaf.cert);
  }
  ca.key = '';
  return fingerprints;
}

export async function initFederation(o: InitOptions): Promise<Member[]> {
  if (!Number.isInteger(o.members) || o.members < 1 || o.members > 100) throw new FedError('CLI_INVALID', '--members must be 1 to 100');
  if (o.basePort < 1024 || o.basePort + 10 * o.members > 65535) throw new FedError('CLI_INVALID', `--base-port ${o.basePort} leaves no room for ${o.members} members`);
  const existing = await fs.readdir(o.out).catch(() => []);
  if (existing.length > 0) throw new FedError('INIT_EXISTS', `${o.out} is not empty; refusing to overwrite a federation (remove it or pick another --out)`);
  await fs.mkdir(o.out, { recursive: true, mode: 0o700 });
  const dsa = createSlhDsa({ paramSet: o.paramSet });

  const members: Member[] = [];
  for (let i = 0; i < o.members; i++) {
    const name = memberName(i);
    const dir = path.join(o.out, name);
    const identity = await generateIdentity();
    const keys = dsa.generateKeyPair();
    const passphrase = randomBytes(24).toString('base64url');
    await writeFile(path.join(dir, 'signer', 'passphrase'), `${passphrase}\n`);
    await writeNewKeyFile(path.join(dir, 'signer', 'signer.key'), await sealKey(o.paramSet, keys.secretKey, passphrase));
    keys.secretKey.fill(0);
    const fingerprints = await writeMemberTls(o.out, dir, name, o.serverNames ?? []);
    members.push({ name, dir, identity, publicKey: toHex(keys.publicKey), fingerprints, operator: fingerprints.operator, ports: memberPorts(o.basePort, i) });
  }

  const validators = members.map((m) => ({ name: m.name, peer_id: m.identity.peerId, public_key: m.publicKey }));
  for (const m of members) {
    const p = m.ports;
    const conf = {
      node: { name: m.name, private_key: m.identity.privateKey },
      network: { addresses: [`/ip4/127.0.0.1/tcp/${p.libp2p}`] },
      peers: { exchange_interval: '30s', connection_timeout: '5s' },
      logging: { level: 'info', format: o.logFormat },
      nats: { url: o.natsUrl },
      services: {
        store: { listen: `127.0.0.1:${p.store}`, metrics: `127.0.0.1:${p.storeMetrics}` },
        gateway: { listen: `127.0.0.1:${p.gateway}`, metrics: `127.0.0.1:${p.gatewayMetrics}` },
        consensus: { listen: `127.0.0.1:${p.consensus}`, admin_listen: `127.0.0.1:${p.admin}`, metrics: `127.0.0.1:${p.consensusMetrics}`,
          admin_clients: [m.fingerprints.operator] },
        signer: { address: `127.0.0.1:${p.signer}` },
      },
      tls: TLS_SECTION,
      crypto: { param_set: o.paramSet, backend: 'auto' },
      consensus: { chain_id: o.chainId, base_timeout: o.baseTimeout, timeout_multiplier: 1.5, max_timeout: '30s' },
      validators,
    };
    await writeFile(path.join(m.dir, 'conf.yaml'), `# Member ${m.name} of ${o.chainId}, made by btcfed init.\n${stringify(conf)}`);
    const peers = members.filter((x) => x !== m).map((x) => ({ public_key: x.identity.publicKey, addresses: [`/ip4/127.0.0.1/tcp/${x.ports.libp2p}`] }));
    await writeFile(path.join(m.dir, 'peers.yaml'), stringify({ peers }));
    const signerConf = {
      member: m.name, chain_id: o.chainId, listen: `127.0.0.1:${p.signer}`,
      tls: { ca_file: 'tls/ca.pem', cert_file: 'tls/cert.pem', key_file: 'tls/key.pem' },
      // Only this member's consensus service may ask for signatures.
      allowed_clients: [m.fingerprints.consensus],
      crypto: { param_set: o.paramSet, backend: 'auto' },
      key_file: 'signer.key', passphrase_file: 'passphrase',
      metrics: `127.0.0.1:${p.signerMetrics}`,
      nats: { url: o.natsUrl },
      logging: { level: 'info', format: o.logFormat },
      validators,
    };
    await writeFile(path.join(m.dir, 'signer', 'signer.yaml'), `# The signer of ${m.name}. On a real deployment this dir lives on the hardened host.\n${stringify(signerConf)}`);
    // This run made the signer's dir: its first start may create the safety state (and only that one).
    await markFreshSigner(path.join(m.dir, 'signer'));
  }
  return members;
}
