// `btcfed show-node-id`, `show-validator` and `config check`: what a member dir says about the
// member, and whether a configuration file would be accepted — read from files only, nothing
// started, nothing dialled.

import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import {
  parseCardText, parseConfText, parsePeersText, parsePrivateKey, parseSignerConfText, resolvePath, type ConfigIssue, type Conf,
} from '#libs/config/index.ts';
import { SERVICE_PLACEHOLDER, SERVICE_ROLES } from '#libs/service/index.ts';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { CARD_FILE, passphraseBesideKey } from './member.ts';

function readConf(memberDir: string): Conf {
  const file = path.join(memberDir, 'conf.yaml');
  if (!fs.existsSync(file)) throw new FedError('MEMBER_DIR_INVALID', `${file} not found: point --member at a member dir`, { file });
  return parseConfText(fs.readFileSync(file, 'utf8'), file);
}

/** The member's libp2p peer id, from the private key in its conf.yaml. */
/** The peer id of the member card beside `confFile`, when there is a readable one. */
function cardPeerBeside(confFile: string): string | undefined {
  const cardFile = path.join(path.dirname(path.resolve(confFile)), CARD_FILE);
  try { return parseCardText(fs.readFileSync(cardFile, 'utf8'), cardFile).libp2p.peer_id; } catch { return undefined; }
}

export function showNodeId(memberDir: string): string {
  const conf = readConf(memberDir);
  if (conf.node.private_key === undefined) {
    throw new FedError('NODE_KEY_MISSING', `${path.join(memberDir, 'conf.yaml')} has no node.private_key yet: the store makes one at its first start`, {});
  }
  const k = parsePrivateKey(conf.node.private_key);
  if (!k.ok) throw new FedError('CONFIG_INVALID', `node.private_key: ${k.reason}`, {});
  return k.value.peerId;
}

/**
 * The member's entry in its validator set (conf.yaml), as YAML to paste, with its index. Before
 * the member joined a genesis, the entry its card will produce.
 */
export function showValidator(memberDir: string): string {
  const conf = readConf(memberDir);
  const i = conf.validators.findIndex((v) => v.name === conf.node.name);
  if (i >= 0) {
    const v = conf.validators[i]!;
    return `# validator ${i} of ${conf.validators.length} on chain ${conf.consensus.chain_id} (${conf.crypto.param_set})
- name: ${v.name}
  peer_id: ${v.peer_id}
  public_key: ${v.public_key}`;
  }
  const cardFile = path.join(memberDir, CARD_FILE);
  if (conf.validators.length === 0 && fs.existsSync(cardFile)) {
    const card = parseCardText(fs.readFileSync(cardFile, 'utf8'), cardFile);
    return `# not in a validator set yet (no genesis joined); from ${cardFile} (${card.slh_dsa.param_set})
- name: ${card.name}
  peer_id: ${card.libp2p.peer_id}
  public_key: ${card.slh_dsa.public_key}`;
  }
  throw new FedError('NOT_A_VALIDATOR', `${conf.node.name} is not in the validators of ${path.join(memberDir, 'conf.yaml')} (${conf.validators.map((v) => v.name).join(', ') || 'none'})`, {});
}

export type CheckResult = { ok: true; summary: string } | { ok: false; problems: string[] };

type Kind = 'conf' | 'peers' | 'signer';

/** Which file this is: by its top-level keys, else by its name. */
function kindOf(file: string, data: unknown): Kind | undefined {
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    const keys = Object.keys(data);
    if (keys.includes('peers') && !keys.includes('node')) return 'peers';
    if (keys.includes('node')) return 'conf';
    if (keys.includes('member') || keys.includes('key_file')) return 'signer';
  }
  const base = path.basename(file);
  if (/peers/.test(base)) return 'peers';
  if (/signer/.test(base)) return 'signer';
  if (/conf/.test(base)) return 'conf';
  return undefined;
}

/** Each named file that is not there, as `field: path does not exist`. */
function missing(fields: ReadonlyArray<readonly [string, string | undefined]>, at: (p: string) => string): string[] {
  return fields.flatMap(([field, p]) => (p === undefined || fs.existsSync(at(p)) ? [] : [`${field}: ${at(p)} does not exist`]));
}

/** Mode bits a secret must not have: readable or writable by others, writable by its group. */
const UNSAFE_SECRET_MODE = 0o027;

/** Each secret file (a key, a passphrase, credentials) that others may read, as `field: path …`. */
function exposed(fields: ReadonlyArray<readonly [string, string | undefined]>, at: (p: string) => string): string[] {
  return fields.flatMap(([field, p]) => {
    if (p === undefined) return [];
    const st = fs.statSync(at(p), { throwIfNoEntry: false });
    if (!st || (st.mode & UNSAFE_SECRET_MODE) === 0) return [];
    return [`${field}: ${at(p)} is a secret with mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: others may read it (chmod 600, or 640 for a group that runs the service)`];
  });
}

/**
 * The files conf.yaml names that are not there, resolved as the services resolve them. A
 * certificate named with {service} is one per service, and a host holds only its own services'
 * (the signer's host none of the others'): it is a problem only when no service has one.
 */
function confFilesMissing(c: Conf, confDir: string): string[] {
  const at = (p: string) => resolvePath(c, confDir, p);
  const problems: string[] = [];
  if (c.tls) {
    problems.push(...missing([['tls.ca_file', c.tls.ca_file]], at));
    for (const field of ['cert_file', 'key_file'] as const) {
      const p = c.tls[field];
      if (!p.includes(SERVICE_PLACEHOLDER)) {
        problems.push(...missing([[`tls.${field}`, p]], at));
        if (field === 'key_file') problems.push(...exposed([['tls.key_file', p]], at));
        continue;
      }
      const present = SERVICE_ROLES.filter((role) => fs.existsSync(at(p.split(SERVICE_PLACEHOLDER).join(role))));
      if (present.length === 0) {
        problems.push(`tls.${field}: no file for any service (${at(p)}, ${SERVICE_PLACEHOLDER} one of ${SERVICE_ROLES.join(', ')})`);
      } else if (field === 'key_file') {
        problems.push(...exposed(present.map((role) => [`tls.key_file (${role})`, p.split(SERVICE_PLACEHOLDER).join(role)] as const), at));
      }
    }
  }
  const n = c.nats;
  const inConfDir = (p: string) => path.resolve(confDir, p);
  problems.push(...missing([['nats.password_file', n.password_file], ['nats.token_file', n.token_file], ['nats.creds_file', n.creds_file],
    ['nats.nkey_seed_file', n.nkey_seed_file], ['nats.tls.ca_file', n.tls?.ca_file], ['nats.tls.cert_file', n.tls?.cert_file],
    ['nats.tls.key_file', n.tls?.key_file]], inConfDir));
  problems.push(...exposed([['nats.password_file', n.password_file], ['nats.token_file', n.token_file], ['nats.creds_file', n.creds_file],
    ['nats.nkey_seed_file', n.nkey_seed_file], ['nats.tls.key_file', n.tls?.key_file]], inConfDir));
  return problems;
}

const issueText = (i: ConfigIssue): string => `${i.field || '(file)'}: ${i.reason}`;

/**
 * Every problem of one configuration file (conf.yaml, peers.yaml or signer.yaml), each naming its
 * field; for conf.yaml also what would stop its consensus service (no validator set, itself not
 * in it, a node key that does not match its validator entry).
 */
export function checkConfigFile(file: string): CheckResult {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
    return { ok: false, problems: [`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`] };
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  // Not YAML at all: say where, whatever the file is called.
  if (doc.errors.length > 0) return { ok: false, problems: doc.errors.map((e) => `(file): ${e.message.split('\n')[0]}`) };
  const kind = kindOf(file, doc.toJS());
  const invalid = (err: unknown): CheckResult => {
    if (isFedError(err, 'CONFIG_INVALID')) {
      const issues = (err.details as { issues?: ConfigIssue[] }).issues;
      return { ok: false, problems: issues && issues.length > 0 ? issues.map(issueText) : [err.message] };
    }
    throw err;
  };
  try {
    switch (kind) {
      case 'peers': {
        const peers = parsePeersText(text, file);
        return { ok: true, summary: `peers.yaml, ${peers.length} peer(s)` };
      }
      case 'signer': {
        const s = parseSignerConfText(text, file);
        // Resolved as the signer resolves them: in its data dir, the directory of signer.yaml.
        const dir = path.dirname(path.resolve(file));
        const at = (p: string) => path.resolve(dir, p);
        // The key's files as its custody says (docs/signer.md, "Key custody"): a token's PIN and sealed key, or the key file.
        const c = s.custody;
        const keyFiles: Array<readonly [string, string | undefined]> = c.backend === 'pkcs11'
          ? [['custody.pin_file', c.pin_file], ...(c.mode === 'sealed' ? [['custody.sealed_file', c.sealed_file] as const] : [])]
          : [['key_file', s.key_file]];
        const problems = [
          ...missing([...keyFiles, ['passphrase_file', s.passphrase_file],
            ['tls.ca_file', s.tls?.ca_file], ['tls.cert_file', s.tls?.cert_file], ['tls.key_file', s.tls?.key_file]], at),
          ...exposed([...keyFiles, ['passphrase_file', s.passphrase_file], ['tls.key_file', s.tls?.key_file]], at),
        ];
        const beside = s.passphrase_file === undefined || c.backend !== 'file' ? null : passphraseBesideKey(dir, s.key_file, s.passphrase_file);
        if (beside !== null) problems.push(`passphrase_file: ${beside}`);
        if (problems.length > 0) return { ok: false, problems };
        return { ok: true, summary: `signer.yaml of ${s.member}, chain ${s.chain_id}, ${s.validators.length} validator(s)` };
      }
      case 'conf': {
        const c = parseConfText(text, file);
        const problems: string[] = [];
        const self = c.validators.findIndex((v) => v.name === c.node.name);
        if (c.validators.length === 0) problems.push('validators: empty: the member has not joined a genesis (btcfed member join [--observer]); its consensus service will not start');
        else if (self < 0 && c.node.role === 'validator') problems.push(`validators: ${c.node.name} (node.name) is not among them (${c.validators.map((v) => v.name).join(', ')}); its consensus service will not start (an observer says node.role: observer)`);
        if (self >= 0 && c.node.private_key !== undefined) {
          const k = parsePrivateKey(c.node.private_key);
          // A member moved to another peer id by a committed rotation (btcfed member rotate --apply)
          // holds a key genesis never saw; its own card beside conf.yaml names it.
          if (k.ok && k.value.peerId !== c.validators[self]!.peer_id && cardPeerBeside(file) !== k.value.peerId) {
            problems.push(`validators.${self}.peer_id: ${c.validators[self]!.peer_id}, but node.private_key is peer ${k.value.peerId}, and no ${CARD_FILE} beside it names that peer (as after btcfed member rotate --apply); the others would refuse this member's frames`);
          }
        }
        problems.push(...confFilesMissing(c, path.dirname(path.resolve(file))));
        // conf.yaml holds the member's libp2p private key.
        if (c.node.private_key !== undefined) problems.push(...exposed([['(file, it holds node.private_key)', file]], (p) => path.resolve(p)));
        if (problems.length > 0) return { ok: false, problems };
        if (c.node.role === 'observer') {
          return { ok: true, summary: `conf.yaml of observer ${c.node.name} of ${c.validators.length} validators on chain ${c.consensus.chain_id}${c.consensus.follow.length > 0 ? `, following ${c.consensus.follow.length} peer(s) first` : ''}` };
        }
        return { ok: true, summary: `conf.yaml of ${c.node.name}, validator ${self} of ${c.validators.length} on chain ${c.consensus.chain_id}` };
      }
      default:
        return { ok: false, problems: ['not a conf.yaml, peers.yaml or signer.yaml (no node, peers or member section)'] };
    }
  } catch (err) {
    return invalid(err);
  }
}
