// Reading a member's files at start: conf.yaml must be valid (or the start stops, saying why);
// a missing libp2p key is generated and written back with the file's comments kept; a corrupt
// peers.yaml is moved aside and the last good copy takes its place. Nothing is lost: a file we
// cannot use is kept as a timestamped backup.

import path from 'node:path';
import { parseDocument } from 'yaml';
import type { Logger } from 'pino';
import {
  generateIdentity, parseConfText, parsePeersText, parsePrivateKey, peersToData, type Conf, type Peer,
} from '#libs/config/index.ts';
import { FedError, isFedError } from '#libs/errors/index.ts';
import { stringify } from 'yaml';
import { moveAside, readIfExists, sha256Hex, writeFileAtomic } from '#libs/files/index.ts';

export const CONF_FILE = 'conf.yaml';
export const PEERS_FILE = 'peers.yaml';
export const LAST_GOOD = '.last-good';

export interface LoadedConf { conf: Conf; text: string; sha: string; peerId: string; publicKey: string }
export interface LoadedPeers { peers: Peer[]; text: string; sha: string; restoredFrom?: string; backup?: string }

export function peersText(peers: readonly Peer[]): string {
  return '# Peers of this member. Managed by the store; hand edits are merged, not lost.\n'
    + stringify(peersToData(peers));
}

/** Loads conf.yaml; generates node.private_key when it is absent and writes the file back. */
export async function loadConf(dataDir: string, log: Logger): Promise<LoadedConf> {
  const file = path.join(dataDir, CONF_FILE);
  let text = await readIfExists(file);
  if (text === undefined) throw new FedError('CONFIG_MISSING', `${file} does not exist`, { file });
  let conf = parseConfText(text, file);
  if (conf.node.private_key === undefined) {
    const identity = await generateIdentity();
    const doc = parseDocument(text);
    doc.setIn(['node', 'private_key'], identity.privateKey);
    text = doc.toString();
    conf = parseConfText(text, file);
    await writeFileAtomic(file, text);
    log.info({ file, peerId: identity.peerId }, 'generated libp2p private key and wrote it to conf.yaml');
  }
  const id = parsePrivateKey(conf.node.private_key!);
  if (!id.ok) throw new FedError('CONFIG_INVALID', `${file}: node.private_key: ${id.reason}`, { file });
  await writeFileAtomic(file + LAST_GOOD, text);
  return { conf, text, sha: sha256Hex(text), peerId: id.value.peerId, publicKey: id.value.publicKey };
}

/**
 * Loads peers.yaml. Missing → empty list (and the file is created). Corrupt or invalid →
 * moved aside, and the last good copy (peers.yaml.last-good) restored in its place.
 */
export async function loadPeers(dataDir: string, selfPeerId: string, log: Logger): Promise<LoadedPeers> {
  const file = path.join(dataDir, PEERS_FILE);
  const text = await readIfExists(file);
  if (text !== undefined) {
    try {
      const peers = parsePeersText(text, file).filter((p) => p.peerId !== selfPeerId);
      await writeFileAtomic(file + LAST_GOOD, text);
      return { peers, text, sha: sha256Hex(text) };
    } catch (err) {
      if (!isFedError(err, 'CONFIG_INVALID')) throw err;
      const backup = await moveAside(file, 'corrupt');
      log.error({ file, backup, err: err.message }, 'peers.yaml is invalid: moved aside, restoring the last good copy');
      const restored = await restoreLastGood(file, selfPeerId, log);
      return { ...restored, backup };
    }
  }
  return restoreLastGood(file, selfPeerId, log);
}

async function restoreLastGood(file: string, selfPeerId: string, log: Logger): Promise<LoadedPeers> {
  const goodText = await readIfExists(file + LAST_GOOD);
  let peers: Peer[] = [];
  let restoredFrom: string | undefined;
  if (goodText !== undefined) {
    try {
      peers = parsePeersText(goodText, file + LAST_GOOD).filter((p) => p.peerId !== selfPeerId);
      restoredFrom = file + LAST_GOOD;
    } catch (err) {
      log.error({ file: file + LAST_GOOD, err: (err as Error).message }, 'last good peers copy is unusable too: starting with no peers');
    }
  }
  const text = peersText(peers);
  await writeFileAtomic(file, text);
  await writeFileAtomic(file + LAST_GOOD, text);
  return { peers, text, sha: sha256Hex(text), ...(restoredFrom ? { restoredFrom } : {}) };
}
