// The operator's path to a federation of members on their own hosts, in three steps:
//   btcfed member init  — on the operator's host: one member's dir (its own CA, each service's
//                         certificate for the given host names, the libp2p identity, the signer's
//                         sealed SLH-DSA key) and its public member-card.yaml;
//   btcfed genesis      — anyone: the validator set and chain id from every member's card;
//   btcfed member join  — on each operator's host again: the member dir completed from the genesis.
// No step ever needs another member's secrets: only cards (public) and the genesis (public) travel.
// `btcfed init` (a devnet on one machine) is these same steps on 127.0.0.1 (init.ts).
// Must never overwrite a member dir it did not make, or join a member to a second genesis.

import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseDocument, stringify } from 'yaml';
import {
  CARD_VERSION, assembleGenesis, generateIdentity, parseCardText, parseConfText, parseGenesisText, parsePeersText, parsePrivateKey, peersToData,
  parseSignerConfText, passphraseBesideKey, genesisValidators, type Genesis, type Identity, type MemberCard, MEMBER_NAME,
} from '#libs/config/index.ts';
import { createSlhDsa, toHex, type ParamSet } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { writeFileAtomic } from '#libs/files/index.ts';
import { generateCa, issueRoleCertificate } from '#libs/rpc/certs.ts';
import { certificateFingerprint } from '#libs/rpc/index.ts';
import { certificateName, ROLE_USAGE, SERVICE_PLACEHOLDER, type ServiceRole } from '#libs/service/index.ts';
import { sealKey, writeNewKeyFile } from '../services/signer/keyfile.ts';
import { markFreshSigner } from './fresh.ts';
import { DEFAULT_IDLE_HEARTBEAT } from './defaults.ts';

/** Ports of a member from `basePort`: ten consecutive ones (a devnet's member i uses basePort + 10·i). */
export function memberPorts(basePort: number, i = 0) {
  const p = basePort + 10 * i;
  return { store: p, gateway: p + 1, consensus: p + 2, admin: p + 3, signer: p + 4, libp2p: p + 5,
    storeMetrics: p + 6, gatewayMetrics: p + 7, consensusMetrics: p + 8, signerMetrics: p + 9 };
}
export type MemberPorts = ReturnType<typeof memberPorts>;

/** The files `member init` writes and `member join` reads, relative to the member dir. */
export const CARD_FILE = 'member-card.yaml';
export const GENESIS_FILE = 'genesis.yaml';
export const ENV_FILE = 'systemd.env';

export interface MemberInitOptions {
  name: string;
  /** The member dir; must be absent or empty. */
  dir: string;
  /** Names (IP literals or DNS names) of the host of store, gateway and consensus; the first is where they listen. */
  hosts: readonly string[];
  /** Names of the signer's host; the first is the address consensus dials. Default: `hosts`. */
  signerHosts?: readonly string[];
  basePort: number;
  paramSet: ParamSet;
  /** One URL, or every server of a NATS cluster. */
  natsUrls: readonly string[];
  /** Listen on 0.0.0.0 (every interface) instead of the first host. */
  listenAll?: boolean;
  /** Where the CA's certificate and key go. Default <dir>/ca (to move offline). */
  caDir?: string;
  /** Names in every certificate besides the hosts (and localhost, 127.0.0.1, ::1), not advertised. */
  extraNames?: readonly string[];
  logFormat?: 'json' | 'text';
  /** Who made the dir, for the comment atop conf.yaml. Default "btcfed member init". */
  madeBy?: string;
  /**
   * Where the signer's passphrase is written: never in the signer dir, so that the sealed key and
   * what opens it never travel together. Default <dir>/secrets/signer-passphrase (PASSPHRASE_OUT).
   */
  passphraseOut?: string;
  /**
   * signer.yaml's passphrase_file: where the signer host reads it (relative to the signer dir, or
   * absolute). Default the systemd credential of btcfed-signer@<name> (credentialPassphraseFile).
   */
  passphraseFile?: string;
}

/** Where `member init` writes the signer's passphrase, relative to the member dir: beside signer/, never in it. */
export const PASSPHRASE_OUT = path.join('secrets', 'signer-passphrase');

/**
 * Where a signer run by the btcfed-signer@<name> unit reads its passphrase: the systemd credential
 * (LoadCredential=passphrase:/etc/btcfed-signer/<name>.passphrase) — readable by that unit only,
 * never on disk in the signer's data dir.
 */
export const credentialPassphraseFile = (name: string): string => `/run/credentials/btcfed-signer@${name}.service/passphrase`;

/**
 * Why a signer's passphrase file may not be where signer.yaml says (null when it may): in the
 * directory of the sealed key, both travel together (one copy of the signer dir is the key in
 * clear). One rule for `member init`, `btcfed config check` and the signer.
 */
export { passphraseBesideKey };

/** The passphrase file signer.yaml in `signerDir` names, resolved as the signer resolves it (undefined with passphrase_env). */
export async function signerPassphrasePath(signerDir: string): Promise<string | undefined> {
  const file = path.join(signerDir, 'signer.yaml');
  const conf = parseSignerConfText(await fs.readFile(file, 'utf8'), file);
  return conf.passphrase_file === undefined ? undefined : path.resolve(signerDir, conf.passphrase_file);
}

export interface MadeMember {
  name: string;
  dir: string;
  identity: Identity;
  /** SLH-DSA public key, hex. */
  publicKey: string;
  ports: MemberPorts;
  card: MemberCard;
  /** SHA-256 fingerprints of the member's certificates, by role. */
  fingerprints: Record<ServiceRole, string>;
  /** Where the signer's passphrase was written (to move to the signer host apart from signer/). */
  passphraseOut: string;
  /** signer.yaml's passphrase_file. */
  passphraseFile: string;
}

/** A --host value: an IP literal or a DNS name; never a wildcard (that is --listen-all). */
export function checkHost(h: string, flag: string): string {
  const host = h.trim();
  if (host === '') throw new FedError('CLI_INVALID', `${flag}: an empty host name`);
  if (host === '0.0.0.0' || host === '::') throw new FedError('CLI_INVALID', `${flag} ${host}: a wildcard is not a name others can dial or a certificate can carry; give the host's address or name, and --listen-all to listen on every interface`);
  if (isIP(host) === 0 && !/^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
    throw new FedError('CLI_INVALID', `${flag} ${JSON.stringify(host)}: neither an IP address nor a DNS name`);
  }
  return host;
}

/** "host:port", IPv6 in brackets. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The libp2p multiaddr others dial: /ip4, /ip6 or /dns4. */
function dialMultiaddr(host: string, port: number): string {
  const kind = isIP(host);
  return `/${kind === 4 ? 'ip4' : kind === 6 ? 'ip6' : 'dns4'}/${host}/tcp/${port}`;
}

async function writeNew(file: string, text: string, mode = 0o600): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, text, { mode, flag: 'wx' });
}

/** conf.yaml's tls section: the member's CA, and each service's own files through {service}. */
const TLS_SECTION = { ca_file: 'tls/ca.pem', cert_file: `tls/${SERVICE_PLACEHOLDER}.pem`, key_file: `tls/${SERVICE_PLACEHOLDER}-key.pem` };

const natsSectionFor = (urls: readonly string[]) => (urls.length === 1 ? { url: urls[0]! } : { servers: [...urls] });

/** The member's CA (to caDir), every role's certificate (the signer's in signer/tls/), and their fingerprints. */
async function writeMemberTls(o: MemberInitOptions, caDir: string, hosts: readonly string[], signerHosts: readonly string[]): Promise<Record<ServiceRole, string>> {
  const ca = await generateCa({ commonName: `btcfed ${o.name} CA` });
  await writeNew(path.join(caDir, 'ca.pem'), ca.cert, 0o644);
  await writeNew(path.join(caDir, 'ca-key.pem'), ca.key);
  await writeNew(path.join(o.dir, 'tls', 'ca.pem'), ca.cert, 0o644);
  await writeNew(path.join(o.dir, 'signer', 'tls', 'ca.pem'), ca.cert, 0o644);
  const extra = o.extraNames ?? [];
  const fingerprints = {} as Record<ServiceRole, string>;
  for (const role of Object.keys(ROLE_USAGE) as ServiceRole[]) {
    const names = role === 'signer' ? [...signerHosts, ...extra] : [...hosts, ...extra];
    const leaf = await issueRoleCertificate(ca, ROLE_USAGE[role], { commonName: certificateName(o.name, role), names });
    if (role === 'signer') {
      await writeNew(path.join(o.dir, 'signer', 'tls', 'cert.pem'), leaf.cert, 0o644);
      await writeNew(path.join(o.dir, 'signer', 'tls', 'key.pem'), leaf.key);
    } else {
      await writeNew(path.join(o.dir, 'tls', `${role}.pem`), leaf.cert, 0o644);
      await writeNew(path.join(o.dir, 'tls', `${role}-key.pem`), leaf.key);
    }
    fingerprints[role] = certificateFingerprint(leaf.cert);
  }
  ca.key = '';
  return fingerprints;
}

/**
 * `btcfed member init`: one member's dir, its CA under caDir, and its public card. conf.yaml and
 * signer.yaml have no validator set yet (`member join` writes it from the genesis).
 */
export async function initMember(o: MemberInitOptions): Promise<MadeMember> {
  if (!MEMBER_NAME.test(o.name)) throw new FedError('CLI_INVALID', `--name ${JSON.stringify(o.name)}: 1–32 characters of a-z, 0-9 and "-", starting with a letter or digit`);
  if (o.hosts.length === 0) throw new FedError('CLI_INVALID', '--host is required: the address or DNS name of the host this member runs on');
  const hosts = [...new Set(o.hosts.map((h) => checkHost(h, '--host')))];
  const signerHosts = [...new Set((o.signerHosts && o.signerHosts.length > 0 ? o.signerHosts : hosts).map((h) => checkHost(h, '--signer-host')))];
  if (!Number.isInteger(o.basePort) || o.basePort < 1024 || o.basePort + 9 > 65535) throw new FedError('CLI_INVALID', `--base-port ${o.basePort}: must be 1024 to 65526 (the member uses ten ports from it)`);
  if (o.natsUrls.length === 0) throw new FedError('CLI_INVALID', '--nats: at least one NATS URL');
  for (const u of o.natsUrls) if (!/^(nats|tls):\/\/[^\s]+$/.test(u)) throw new FedError('CLI_INVALID', `--nats ${JSON.stringify(u)}: must be a nats:// or tls:// URL`);
  // The passphrase goes apart from the signer dir; signer.yaml names where the signer host reads it.
  const signerDir = path.resolve(o.dir, 'signer');
  const passphraseOut = path.resolve(o.passphraseOut ?? path.join(o.dir, PASSPHRASE_OUT));
  const passphraseFile = o.passphraseFile ?? credentialPassphraseFile(o.name);
  if (!path.relative(signerDir, passphraseOut).startsWith('..')) {
    throw new FedError('CLI_INVALID', `--passphrase-out ${passphraseOut}: not in the signer dir ${signerDir}, where the sealed key is (they would travel together)`);
  }
  const beside = passphraseBesideKey(signerDir, 'signer.key', passphraseFile);
  if (beside !== null) throw new FedError('CLI_INVALID', `--passphrase-file ${passphraseFile}: ${beside}`);
  const existing = await fs.readdir(o.dir).catch(() => []);
  if (existing.length > 0) throw new FedError('INIT_EXISTS', `${o.dir} is not empty; refusing to overwrite a member (remove it or pick another --out)`);
  await fs.mkdir(o.dir, { recursive: true, mode: 0o700 });
  const caDir = o.caDir ?? path.join(o.dir, 'ca');
  const p = memberPorts(o.basePort);
  const listenHost = o.listenAll ? '0.0.0.0' : hosts[0]!;
  const signerListen = o.listenAll ? '0.0.0.0' : signerHosts[0]!;
  const logFormat = o.logFormat ?? 'json';

  // The signer's key, sealed under a passphrase of its own; the secret half is wiped at once.
  const dsa = createSlhDsa({ paramSet: o.paramSet });
  const keys = dsa.generateKeyPair();
  const passphrase = randomBytes(24).toString('base64url');
  await writeNew(passphraseOut, `${passphrase}\n`);
  await fs.mkdir(signerDir, { recursive: true, mode: 0o700 });
  await writeNewKeyFile(path.join(o.dir, 'signer', 'signer.key'), await sealKey(o.paramSet, keys.secretKey, passphrase));
  keys.secretKey.fill(0);
  const publicKey = toHex(keys.publicKey);
  const identity = await generateIdentity();
  const fingerprints = await writeMemberTls(o, caDir, hosts, signerHosts);

  // libp2p listens on the hosts that are addresses (a DNS name cannot be listened on), or everywhere.
  const ipHosts = hosts.filter((h) => isIP(h) !== 0);
  const listenAddrs = o.listenAll || ipHosts.length === 0 ? [`/ip4/0.0.0.0/tcp/${p.libp2p}`] : ipHosts.map((h) => dialMultiaddr(h, p.libp2p));
  const at = (port: number) => hostPort(listenHost, port);
  const conf = {
    node: { name: o.name, private_key: identity.privateKey },
    network: { addresses: listenAddrs },
    peers: { exchange_interval: '30s', connection_timeout: '5s' },
    logging: { level: 'info', format: logFormat },
    nats: natsSectionFor(o.natsUrls),
    services: {
      store: { listen: at(p.store), metrics: at(p.storeMetrics) },
      gateway: { listen: at(p.gateway), metrics: at(p.gatewayMetrics) },
      consensus: { listen: at(p.consensus), admin_listen: at(p.admin), metrics: at(p.consensusMetrics), admin_clients: [fingerprints.operator] },
      // A signer on this host (no --signer-host) is dialled on loopback under --listen-all: the public
      // name of a host behind NAT is none of its interfaces. Its certificate names 127.0.0.1 too.
      signer: { address: hostPort(o.listenAll && !(o.signerHosts && o.signerHosts.length > 0) ? '127.0.0.1' : signerHosts[0]!, p.signer) },
    },
    tls: TLS_SECTION,
    crypto: { param_set: o.paramSet, backend: 'auto' },
    consensus: { base_timeout: '1s', timeout_multiplier: 1.5, max_timeout: '30s' },
    validators: [],
  };
  parseConfText(stringify(conf), path.join(o.dir, 'conf.yaml')); // what we write must be valid
  await writeNew(path.join(o.dir, 'conf.yaml'), `# Member ${o.name}, made by ${o.madeBy ?? 'btcfed member init'}. The chain id and validator set come from\n`
    + `# btcfed member join --genesis genesis.yaml --dir ${o.dir}\n${stringify(conf)}`);
  await writeNew(path.join(o.dir, 'peers.yaml'), stringify({ peers: [] }));
  const signerConf = {
    member: o.name,
    listen: hostPort(signerListen, p.signer),
    tls: { ca_file: 'tls/ca.pem', cert_file: 'tls/cert.pem', key_file: 'tls/key.pem' },
    // Only this member's consensus service may ask for signatures.
    allowed_clients: [fingerprints.consensus],
    crypto: { param_set: o.paramSet, backend: 'auto' },
    key_file: 'signer.key', passphrase_file: passphraseFile,
    metrics: hostPort(signerListen, p.signerMetrics),
    nats: natsSectionFor(o.natsUrls),
    logging: { level: 'info', format: logFormat },
    validators: [],
  };
  parseSignerConfText(stringify(signerConf), path.join(o.dir, 'signer', 'signer.yaml'));
  await writeNew(path.join(o.dir, 'signer', 'signer.yaml'), `# The signer of ${o.name}: this dir (and only this one) goes to the signer's host, ${signerHosts[0]}.\n${stringify(signerConf)}`);
  // This run made the signer's key: its first start may create the safety state (and only that one).
  await markFreshSigner(path.join(o.dir, 'signer'));
  // The store address for the gateway and consensus units (deploy/systemd): /etc/btcfed/<name>.env.
  await writeNew(path.join(o.dir, ENV_FILE), `# /etc/btcfed/${o.name}.env for the btcfed-*@${o.name} systemd units\nBTCFED_STORE=${hostPort(o.listenAll ? '127.0.0.1' : listenHost, p.store)}\n`, 0o644);

  const card: MemberCard = {
    version: CARD_VERSION,
    name: o.name,
    slh_dsa: { param_set: o.paramSet, public_key: publicKey },
    libp2p: { peer_id: identity.peerId, public_key: identity.publicKey, addresses: hosts.map((h) => dialMultiaddr(h, p.libp2p)) },
  };
  const cardText = `# The public card of member ${o.name}: send it to whoever assembles the genesis. No secret in here.\n${stringify(card)}`;
  parseCardText(cardText, CARD_FILE);
  await writeNew(path.join(o.dir, CARD_FILE), cardText, 0o644);
  return { name: o.name, dir: o.dir, identity, publicKey, ports: p, card, fingerprints, passphraseOut, passphraseFile };
}

/** The genesis as genesis.yaml holds it. */
export function genesisText(g: Genesis): string {
  return `# Genesis of chain ${g.chain_id}, made by btcfed genesis from ${g.members.length} member card(s).\n`
    + `# Every operator compares the digest below out of band before btcfed member join.\n${stringify(g)}`;
}


/** `btcfed genesis`: the genesis from card files, written to `out` (never over an existing file). */
export async function makeGenesis(o: { chainId: string; baseTimeout: string; idleHeartbeat?: string; cardFiles: readonly string[]; out: string }): Promise<Genesis> {
  if (o.cardFiles.length === 0) throw new FedError('CLI_INVALID', 'genesis needs at least one --card FILE (a member-card.yaml)');
  const cards = await Promise.all(o.cardFiles.map(async (file) => {
    const text = await fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new FedError('CLI_INVALID', `--card ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    return { card: parseCardText(text, file), from: file };
  }));
  const g = assembleGenesis({ chainId: o.chainId, baseTimeout: o.baseTimeout, idleHeartbeat: o.idleHeartbeat ?? DEFAULT_IDLE_HEARTBEAT, cards });
  await fs.writeFile(o.out, genesisText(g), { mode: 0o644, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'EEXIST' ? new FedError('GENESIS_EXISTS', `${o.out} exists; refusing to overwrite a genesis (remove it or pick another --out)`) : err;
  });
  return g;
}

/** The canonical text of a card, for comparing two. */
const cardKey = (c: MemberCard) => JSON.stringify([c.version, c.name, c.slh_dsa.param_set, c.slh_dsa.public_key, c.libp2p.peer_id, c.libp2p.public_key, c.libp2p.addresses]);

/** Why the genesis's card for this member is not this member's own (null when it is). */
function cardMismatch(own: MemberCard, theirs: MemberCard): string | null {
  if (theirs.libp2p.peer_id !== own.libp2p.peer_id) return `libp2p peer id ${theirs.libp2p.peer_id}, but this member's is ${own.libp2p.peer_id}`;
  if (theirs.slh_dsa.public_key !== own.slh_dsa.public_key) return `SLH-DSA public key ${theirs.slh_dsa.public_key.slice(0, 16)}…, but this member's is ${own.slh_dsa.public_key.slice(0, 16)}…`;
  if (theirs.slh_dsa.param_set !== own.slh_dsa.param_set) return `parameter set ${theirs.slh_dsa.param_set}, but this member's is ${own.slh_dsa.param_set}`;
  if (theirs.libp2p.public_key !== own.libp2p.public_key) return 'another libp2p public key';
  if (cardKey(theirs) !== cardKey(own)) return `addresses ${theirs.libp2p.addresses.join(', ')}, but this member's card has ${own.libp2p.addresses.join(', ')}`;
  return null;
}

export interface JoinResult {
  genesis: Genesis;
  /** This member's validator index. */
  index: number;
  /** False when the dir had already joined this same genesis (nothing written). */
  changed: boolean;
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new FedError('JOIN_INVALID', `${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message} (${what})`);
  }
}

/** This member's validator index in `g`, or why `g` does not hold the member's own card exactly. */
export function checkGenesisForMember(g: Genesis, file: string, own: MemberCard, dir: string): number {
  const index = g.members.findIndex((m) => m.name === own.name);
  if (index < 0) {
    const same = g.members.find((m) => m.libp2p.peer_id === own.libp2p.peer_id || m.slh_dsa.public_key === own.slh_dsa.public_key);
    throw new FedError('GENESIS_WITHOUT_MEMBER', `${file} (${g.digest}) has no member named ${own.name}`
      + (same ? `; its member ${same.name} carries this member's keys — the card was renamed` : `; its members are ${g.members.map((m) => m.name).join(', ')}`)
      + `. The genesis must be made with this member's ${path.join(dir, CARD_FILE)}`, { file, member: own.name });
  }
  const why = cardMismatch(own, g.members[index]!);
  if (why !== null) {
    throw new FedError('GENESIS_CARD_MISMATCH', `${file} (${g.digest}) has a card for ${own.name} with ${why} (${path.join(dir, CARD_FILE)}): `
      + 'it was made from another card of this name; the genesis must hold this member\'s card exactly', { file, member: own.name });
  }
  return index;
}

/**
 * `btcfed member join`: conf.yaml's chain id, base timeout and validator set, signer.yaml's chain id
 * and validator set, and peers.yaml's entries for the other members, from the genesis; then the
 * genesis itself into the dir, last, as the record that this member joined it. Again with the same
 * genesis: nothing to do. With another: refused.
 */
/** What a join reads: the genesis, and the member dir's card and conf.yaml. */
async function joinInputs(genesisFile: string, dir: string) {
  const text = await readText(genesisFile, 'the genesis made by btcfed genesis');
  const g = parseGenesisText(text, genesisFile);
  const cardFile = path.join(dir, CARD_FILE);
  const own = parseCardText(await readText(cardFile, 'the member dir must be one made by btcfed member init'), cardFile);
  const confFile = path.join(dir, 'conf.yaml');
  const confText = await readText(confFile, 'the member dir must be one made by btcfed member init');
  return { text, g, cardFile, own, confFile, confText, conf: parseConfText(confText, confFile) };
}

/**
 * `btcfed member join`: a validator's dir from the genesis. With `added`, a member that is not in
 * the genesis but is to be added to the running chain by a reconfiguration (docs/reconfiguration.md):
 * its conf.yaml gets genesis's set (what it checks the chain from), its signer stands by (signs
 * nothing until shown the proof of an epoch that seats it), and its consensus follows the chain
 * until then. Its index is -1 (it has none in the genesis).
 */
export async function joinMember(o: { genesisFile: string; dir: string; added?: boolean }): Promise<JoinResult> {
  const dir = o.dir;
  const { text, g, cardFile, own, confFile, confText, conf } = await joinInputs(o.genesisFile, dir);
  // The card must be this dir's: a card copied in from another member would join the wrong keys.
  const dirPeer = conf.node.private_key === undefined ? undefined : parsePrivateKey(conf.node.private_key);
  if (conf.node.name !== own.name || (dirPeer?.ok && dirPeer.value.peerId !== own.libp2p.peer_id)) {
    throw new FedError('JOIN_INVALID', `${cardFile} is not the card of the member in ${dir} (conf.yaml is ${conf.node.name}${dirPeer?.ok ? `, peer ${dirPeer.value.peerId}` : ''})`);
  }
  let index = -1;
  if (o.added) {
    const same = g.members.find((m) => m.name === own.name || m.libp2p.peer_id === own.libp2p.peer_id || m.slh_dsa.public_key === own.slh_dsa.public_key);
    if (same) {
      throw new FedError('JOIN_INVALID', `${own.name} is ${same.name} of ${o.genesisFile} (same name, peer id or key): a member of the genesis joins without --added`, { member: own.name });
    }
  } else {
    index = checkGenesisForMember(g, o.genesisFile, own, dir);
  }
  if (g.param_set !== conf.crypto.param_set) {
    throw new FedError('GENESIS_CARD_MISMATCH', `${o.genesisFile} is for ${g.param_set}, but ${confFile} uses ${conf.crypto.param_set}`);
  }

  const joinedFile = path.join(dir, GENESIS_FILE);
  if (existsSync(joinedFile)) {
    const joined = parseGenesisText(await fs.readFile(joinedFile, 'utf8'), joinedFile);
    if (joined.digest === g.digest) return { genesis: g, index, changed: false };
    throw new FedError('JOIN_ALREADY_JOINED', `${dir} already joined chain ${joined.chain_id} (genesis ${joined.digest}); refusing ${o.genesisFile} `
      + `(chain ${g.chain_id}, ${g.digest}): a member joins one genesis only — make a new member dir with btcfed member init for another`,
    { dir, joined: joined.digest, offered: g.digest });
  }
  const signerFile = path.join(dir, 'signer', 'signer.yaml');
  const signerText = await readText(signerFile, 'join before moving the signer dir to its host: it needs the validator set too');

  const validators = genesisValidators(g);
  const confDoc = parseDocument(confText);
  confDoc.setIn(['consensus', 'chain_id'], g.chain_id);
  confDoc.setIn(['consensus', 'base_timeout'], g.base_timeout);
  if (g.idle_heartbeat !== undefined) confDoc.setIn(['consensus', 'idle_heartbeat'], g.idle_heartbeat);
  confDoc.set('validators', validators);
  const newConf = confDoc.toString();
  parseConfText(newConf, confFile);
  const signerDoc = parseDocument(signerText);
  signerDoc.set('chain_id', g.chain_id);
  signerDoc.set('validators', validators);
  if (o.added) signerDoc.set('standby', true);
  const newSigner = signerDoc.toString();
  parseSignerConfText(newSigner, signerFile);
  const peersFile = path.join(dir, 'peers.yaml');
  const oldPeers = existsSync(peersFile) ? parsePeersText(await fs.readFile(peersFile, 'utf8'), peersFile) : [];
  const others = g.members.filter((m) => m.name !== own.name);
  const theirIds = new Set(others.map((m) => m.libp2p.peer_id));
  // The other members as their cards say; anything else the file held (learned peers) kept.
  const peers = [
    ...others.map((m) => ({ publicKey: m.libp2p.public_key, peerId: m.libp2p.peer_id, addresses: [...m.libp2p.addresses], lastSeenMs: 0 })),
    ...oldPeers.filter((p) => !theirIds.has(p.peerId) && p.peerId !== own.libp2p.peer_id),
  ];

  await writeFileAtomic(confFile, newConf, { mode: 0o600 });
  await writeFileAtomic(peersFile, stringify(peersToData(peers)), { mode: 0o600 });
  await writeFileAtomic(signerFile, newSigner, { mode: 0o600 });
  await writeFileAtomic(joinedFile, text, { mode: 0o644 });
  return { genesis: g, index, changed: true };
}

/**
 * `btcfed member join --observer`: an observer's dir from the genesis — node.role observer, the
 * chain id and validator set in conf.yaml (what it checks every block against), the validators
 * as its peers, and, with `follow`, other observers (by their cards) it asks for blocks first
 * (consensus.follow) and dials. The member must not be in the genesis: a validator never runs as
 * an observer. Again with the same genesis: nothing to do. Its signer dir is not used.
 */
export async function joinObserver(o: { genesisFile: string; dir: string; followCards?: readonly string[] }): Promise<{ genesis: Genesis; changed: boolean }> {
  const dir = o.dir;
  const { text, g, cardFile, own, confFile, confText, conf } = await joinInputs(o.genesisFile, dir);
  if (conf.node.name !== own.name) throw new FedError('JOIN_INVALID', `${cardFile} is not the card of the member in ${dir} (conf.yaml is ${conf.node.name})`);
  const listed = g.members.find((m) => m.name === own.name || m.libp2p.peer_id === own.libp2p.peer_id);
  if (listed) {
    throw new FedError('JOIN_INVALID', `${own.name} is validator ${listed.name} of ${o.genesisFile}: a validator joins with btcfed member join, never as an observer`);
  }
  if (g.param_set !== conf.crypto.param_set) {
    throw new FedError('GENESIS_CARD_MISMATCH', `${o.genesisFile} is for ${g.param_set}, but ${confFile} uses ${conf.crypto.param_set}`);
  }
  const joinedFile = path.join(dir, GENESIS_FILE);
  if (existsSync(joinedFile)) {
    const joined = parseGenesisText(await fs.readFile(joinedFile, 'utf8'), joinedFile);
    if (joined.digest === g.digest) return { genesis: g, changed: false };
    throw new FedError('JOIN_ALREADY_JOINED', `${dir} already joined chain ${joined.chain_id} (genesis ${joined.digest}); refusing ${o.genesisFile}`, { dir, joined: joined.digest, offered: g.digest });
  }
  const follow = [];
  for (const file of o.followCards ?? []) follow.push(parseCardText(await readText(file, 'the member card of an observer to follow'), file));
  const confDoc = parseDocument(confText);
  confDoc.setIn(['node', 'role'], 'observer');
  confDoc.setIn(['consensus', 'chain_id'], g.chain_id);
  confDoc.setIn(['consensus', 'base_timeout'], g.base_timeout);
  if (g.idle_heartbeat !== undefined) confDoc.setIn(['consensus', 'idle_heartbeat'], g.idle_heartbeat);
  confDoc.setIn(['consensus', 'follow'], follow.map((f) => f.libp2p.peer_id));
  confDoc.set('validators', genesisValidators(g));
  const newConf = confDoc.toString();
  parseConfText(newConf, confFile);
  const peers = [...g.members, ...follow].map((m) => ({ publicKey: m.libp2p.public_key, peerId: m.libp2p.peer_id, addresses: [...m.libp2p.addresses], lastSeenMs: 0 }));
  await writeFileAtomic(confFile, newConf, { mode: 0o600 });
  await writeFileAtomic(path.join(dir, 'peers.yaml'), stringify(peersToData(peers)), { mode: 0o600 });
  await writeFileAtomic(joinedFile, text, { mode: 0o644 });
  return { genesis: g, changed: true };
}
