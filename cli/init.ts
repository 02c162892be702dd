// `btcfed init`: the data dirs of an N-member federation on one machine, made the way operators
// make members on their own hosts (member.ts): `member init` for each member on 127.0.0.1 with
// ports from basePort + 10·i, `genesis` from their cards, and `member join` of each. Each member
// dir holds conf.yaml (libp2p key, ports, TLS files, the genesis validator set), peers.yaml (every
// other member), member-card.yaml, genesis.yaml, and its signer's dir (signer.yaml, the encrypted
// SLH-DSA key, TLS files), and beside it secrets/signer-passphrase, which its signer.yaml names
// as ../secrets/signer-passphrase: a devnet's explicit local layout, never in the signer dir. Least privilege from the start: each member has
// its own CA, and each of its services, its operator and its client applications their own
// certificate (`<member>-<role>`); the signer admits only its member's consensus certificate.
// The CA keys go to <out>/ca/<member>/, outside every dir a service reads: move them offline.
// Never overwrites an existing federation: it refuses a non-empty output dir.

import fs from 'node:fs/promises';
import path from 'node:path';
import { assembleGenesis, type Identity } from '#libs/config/index.ts';
import type { ParamSet } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import type { ServiceRole } from '#libs/service/index.ts';
import { CARD_FILE, GENESIS_FILE, PASSPHRASE_OUT, genesisText, initMember, joinMember, joinObserver, memberPorts, type MemberPorts } from './member.ts';

export { memberPorts } from './member.ts';

export interface InitOptions {
  members: number;
  out: string;
  basePort: number;
  chainId: string;
  paramSet: ParamSet;
  /** View timeout base; devnets on one machine want it short. */
  baseTimeout: string;
  /** consensus.idle_heartbeat of every member (genesis); absent: a block every view. */
  idleHeartbeat?: string;
  logFormat: 'json' | 'text';
  natsUrl: string;
  /**
   * Extra names (DNS or IP) for every server certificate, besides localhost, 127.0.0.1 and ::1.
   * Default none (one machine).
   */
  serverNames?: readonly string[];
  /**
   * Observers besides the members: o0 follows the validators, o1… follow o0 (a reader tree's
   * first level), each with ports after the members'.
   */
  observers?: number;
}

export const memberName = (i: number): string => `m${i}`;
export const observerName = (i: number): string => `o${i}`;

interface Member {
  name: string; dir: string; identity: Identity; publicKey: string; ports: MemberPorts;
  /** SHA-256 fingerprints of the member's certificates, by role. */
  fingerprints: Record<ServiceRole, string>;
  /** Kept for callers of the first version: the operator's fingerprint. */
  operator: string;
  /** An observer (no signer, not in the genesis). */
  observer?: boolean;
}

/** signer.yaml's passphrase_file in a devnet: the member's secrets/ dir, beside (never in) its signer dir. */
export const DEVNET_PASSPHRASE_FILE = path.join('..', PASSPHRASE_OUT);

/** Where init keeps member `name`'s CA: beside the member dirs, never inside one. */
export const caDir = (out: string, name: string): string => path.join(out, 'ca', name);

export async function initFederation(o: InitOptions): Promise<Member[]> {
  if (!Number.isInteger(o.members) || o.members < 1 || o.members > 100) throw new FedError('CLI_INVALID', '--members must be 1 to 100');
  const observers = o.observers ?? 0;
  if (!Number.isInteger(observers) || observers < 0 || observers > 100) throw new FedError('CLI_INVALID', '--observers must be 0 to 100');
  if (o.basePort < 1024 || o.basePort + 10 * (o.members + observers) > 65535) throw new FedError('CLI_INVALID', `--base-port ${o.basePort} leaves no room for ${o.members} members`);
  const existing = await fs.readdir(o.out).catch(() => []);
  if (existing.length > 0) throw new FedError('INIT_EXISTS', `${o.out} is not empty; refusing to overwrite a federation (remove it or pick another --out)`);
  await fs.mkdir(o.out, { recursive: true, mode: 0o700 });

  const members: Member[] = [];
  const cards = [];
  for (let i = 0; i < o.members; i++) {
    const name = memberName(i);
    const m = await initMember({ name, dir: path.join(o.out, name), hosts: ['127.0.0.1'], basePort: memberPorts(o.basePort, i).store,
      paramSet: o.paramSet, natsUrls: [o.natsUrl], caDir: caDir(o.out, name), extraNames: o.serverNames ?? [], logFormat: o.logFormat,
      madeBy: 'btcfed init', passphraseFile: DEVNET_PASSPHRASE_FILE });
    members.push({ name, dir: m.dir, identity: m.identity, publicKey: m.publicKey, ports: m.ports, fingerprints: m.fingerprints, operator: m.fingerprints.operator });
    cards.push({ card: m.card, from: name });
  }
  const genesis = assembleGenesis({ chainId: o.chainId, baseTimeout: o.baseTimeout, ...(o.idleHeartbeat !== undefined ? { idleHeartbeat: o.idleHeartbeat } : {}), cards });
  const genesisFile = path.join(o.out, GENESIS_FILE);
  await fs.writeFile(genesisFile, genesisText(genesis), { mode: 0o644, flag: 'wx' });
  for (const m of members) await joinMember({ genesisFile, dir: m.dir });
  for (let k = 0; k < observers; k++) {
    const name = observerName(k);
    const m = await initMember({ name, dir: path.join(o.out, name), hosts: ['127.0.0.1'], basePort: memberPorts(o.basePort, o.members + k).store,
      paramSet: o.paramSet, natsUrls: [o.natsUrl], caDir: caDir(o.out, name), extraNames: o.serverNames ?? [], logFormat: o.logFormat,
      madeBy: 'btcfed init' });
    await joinObserver({ genesisFile, dir: m.dir, followCards: k > 0 ? [path.join(o.out, observerName(0), CARD_FILE)] : [] });
    // An observer signs nothing: no signing key lies around for it.
    await fs.rm(path.join(m.dir, 'signer'), { recursive: true, force: true });
    await fs.rm(m.passphraseOut, { force: true });
    members.push({ name, dir: m.dir, identity: m.identity, publicKey: m.publicKey, ports: m.ports, fingerprints: m.fingerprints, operator: m.fingerprints.operator, observer: true });
  }
  return members;
}
