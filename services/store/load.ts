// Reading a member's files at start: conf.yaml must be valid (or the start stops, saying why);
// a missing libp2p key is generated and written back with the file's comments kept; a corrupt
// peers.yaml is moved aside and the last good copy takes its place, or, with none usable, the start
// stops (PEERS_INVALID) and the file is left as it is. Nothing is lost: a file we cannot use is
// kept as a timestamped backup.

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
      const good = await lastGood(file, selfPeerId, log);
      if (!good) {
        // Starting with no peers would cut this member off, and silently: the file stays as the
        // operator left it, and the store does not start until it is fixed.
        throw new FedError('PEERS_INVALID', `${err.message}; there is no usable last good copy (${file + LAST_GOOD}) to restore instead: `
          + `fix the file (btcfed config check ${file}) and start again`, { file });
      }
      const backup = await moveAside(file, 'corrupt');
      log.error({ file, backup, err: err.message }, 'peers.yaml is invalid: moved aside, restoring the last good copy');
      return { ...(await restore(file, good.peers, good.from)), backup };
    }
  }
  // No peers.yaml: the last good copy if there is one; else a member that has none yet.
  const good = await lastGood(file, selfPeerId, log);
  return restore(file, good?.peers ?? [], good?.from);
}

/** The peers of the last good copy, or undefined when there is none or it is unusable. */
async function lastGood(file: string, selfPeerId: string, log: Logger): Promise<{ peers: Peer[]; from: string } | undefined> {
  const goodText = await readIfExists(file + LAST_GOOD);
  if (goodText === undefined) return undefined;
  try {
    return { peers: parsePeersText(goodText, file + LAST_GOOD).filter((p) => p.peerId !== selfPeerId), from: file + LAST_GOOD };
  } catch (err) {
    log.error({ file: file + LAST_GOOD, err: (err as Error).message }, 'last good peers copy is unusable');
    return undefined;
  }
}

async function restore(file: string, peers: Peer[], restoredFrom: string | undefined): Promise<LoadedPeers> {
  const text = peersText(peers);
  await writeFileAtomic(file, text);
  await writeFileAtomic(file + LAST_GOOD, text);
  return { peers, text, sha: sha256Hex(text), ...(restoredFrom ? { restoredFrom } : {}) };
}
