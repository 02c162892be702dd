// `btcfed member rotate`: a member's new identity, made on its operator's host for a `rotate`
// change, and put into force once a committed change seats it.
//   prepare (--libp2p and/or --public-key HEX): a new card, DIR/member-card.next.yaml, from the
//     member's card with a new libp2p identity (its private key kept in DIR/secrets/next-libp2p-key,
//     0600, never in the card) and/or the SLH-DSA public key of a signer standing by. The card goes
//     into `btcfed reconfigure propose --rotate NAME=CARD`.
//   --apply: refused until the member's own consensus is in an epoch that seats the new card
//     (name, peer id and key); then the new libp2p key becomes conf.yaml's node.private_key
//     (durably: temp file, fsync, rename, fsync of the dir) and the new card the member's card.
//     The store and the gateway read node.private_key at start: the operator restarts them.
// Applying twice, or again after a crash half-way, does what is left and nothing more.

import fs from 'node:fs/promises';
import path from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { parseCardText, parsePrivateKey, type MemberCard } from '#libs/config/index.ts';
import { generateIdentity } from '#libs/config/identity.ts';
import { toHex } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { call } from '#libs/rpc/index.ts';
import { fsyncDir, moveAside, readIfExists, writeFileAtomic } from '#libs/files/index.ts';
import { CARD_FILE } from './member.ts';

export const NEXT_CARD_FILE = 'member-card.next.yaml';
export const NEXT_KEY_FILE = path.join('secrets', 'next-libp2p-key');

export interface Prepared { card: MemberCard; cardFile: string; keyFile: string | undefined }

const cardText = (card: MemberCard, what: string) => `# The public card of member ${card.name}, ${what}. No secret in here.\n${stringify(card)}`;

async function readCard(file: string): Promise<MemberCard> {
  const text = await readIfExists(file);
  if (text === undefined) throw new FedError('CLI_INVALID', `${file}: no such file`);
  return parseCardText(text, file);
}

/** The new card (and libp2p key) for a rotation of the member in `dir`; refuses while one is prepared. */
export async function prepareRotation(o: { dir: string; libp2p: boolean; publicKey?: string }): Promise<Prepared> {
  if (!o.libp2p && o.publicKey === undefined) throw new FedError('CLI_INVALID', 'member rotate: give --libp2p (a new libp2p identity), --public-key HEX (the key of a signer standing by), or both');
  const cardFile = path.join(o.dir, NEXT_CARD_FILE);
  const keyFile = path.join(o.dir, NEXT_KEY_FILE);
  for (const f of [cardFile, keyFile]) {
    if (await readIfExists(f) !== undefined) throw new FedError('CLI_INVALID', `${f} exists: a rotation is already prepared (apply it with --apply once its change committed, or remove both files to start again)`);
  }
  const card = await readCard(path.join(o.dir, CARD_FILE));
  const next: MemberCard = { ...card, slh_dsa: { ...card.slh_dsa }, libp2p: { ...card.libp2p, addresses: [...card.libp2p.addresses] } };
  if (o.publicKey !== undefined) {
    if (o.publicKey.toLowerCase() === card.slh_dsa.public_key.toLowerCase()) throw new FedError('CLI_INVALID', '--public-key: is the member\'s current key');
    next.slh_dsa.public_key = o.publicKey.toLowerCase();
  }
  let privateKey: string | undefined;
  if (o.libp2p) {
    const id = await generateIdentity();
    next.libp2p.peer_id = id.peerId;
    next.libp2p.public_key = id.publicKey;
    privateKey = id.privateKey;
  }
  const text = cardText(next, 'after its rotation');
  parseCardText(text, cardFile); // a --public-key of the wrong length is refused here, naming the field
  if (privateKey !== undefined) {
    await fs.mkdir(path.dirname(keyFile), { recursive: true, mode: 0o700 });
    await writeFileAtomic(keyFile, `${privateKey}\n`, { mode: 0o600 });
  }
  await writeFileAtomic(cardFile, text, { mode: 0o644 });
  return { card: next, cardFile, keyFile: privateKey === undefined ? undefined : keyFile };
}

/** Who the member's consensus says holds its seat now: its epoch, and the seat's peer id and key (hex). */
export type SeatOf = (name: string) => Promise<{ epoch: number; seat: { peerId: string; publicKey: string } | undefined }>;

/** `cardBackup`: where the card it replaced went ('' when a crash had already moved it). */
/** SeatOf as the member's consensus answers it (GetValidators of its current epoch). */
export const seatFrom = (client: ConsensusServiceClient): SeatOf => async (name) => {
  const v = await call(client.getValidators.bind(client), {}, { deadlineMs: 10_000 });
  const seat = v.validators.find((x) => x.name === name);
  return { epoch: Number(v.epoch), seat: seat && { peerId: seat.peerId, publicKey: toHex(seat.publicKey) } };
};

export interface Applied { epoch: number; peerId: string; keyChanged: boolean; cardBackup: string }

/** Puts a prepared rotation into force, once the member's consensus is in an epoch seating its new card. */
export async function applyRotation(o: { dir: string; seatOf: SeatOf }): Promise<Applied> {
  const cardFile = path.join(o.dir, NEXT_CARD_FILE);
  const keyFile = path.join(o.dir, NEXT_KEY_FILE);
  const confFile = path.join(o.dir, 'conf.yaml');
  const next = await readCard(cardFile).catch((err: unknown) => {
    throw new FedError('CLI_INVALID', `no rotation prepared in ${o.dir} (${err instanceof Error ? err.message : String(err)}): btcfed member rotate --dir ${o.dir} --libp2p | --public-key HEX first`);
  });
  const { epoch, seat } = await o.seatOf(next.name);
  if (!seat || seat.peerId !== next.libp2p.peer_id || seat.publicKey.toLowerCase() !== next.slh_dsa.public_key.toLowerCase()) {
    throw new FedError('ROTATION_NOT_SEATED', `epoch ${epoch} (this member's consensus) seats ${next.name} ${seat ? `as peer ${seat.peerId}, key ${seat.publicKey.slice(0, 16)}…` : 'nowhere'}, `
      + `not as its new card (peer ${next.libp2p.peer_id}, key ${next.slh_dsa.public_key.slice(0, 16)}…): apply once the change rotating it has committed`);
  }
  const confText = await readIfExists(confFile);
  if (confText === undefined) throw new FedError('CLI_INVALID', `${confFile}: no such file`);
  const doc = parseDocument(confText);
  const running = parsePrivateKey(String(doc.getIn(['node', 'private_key']) ?? ''));
  const keyText = await readIfExists(keyFile);
  let keyChanged = false;
  if (keyText !== undefined) {
    const key = parsePrivateKey(keyText.trim());
    if (!key.ok) throw new FedError('CLI_INVALID', `${keyFile}: ${key.reason}`);
    if (key.value.peerId !== next.libp2p.peer_id) throw new FedError('CLI_INVALID', `${keyFile} is peer ${key.value.peerId}, not the new card's ${next.libp2p.peer_id}`);
    if (!running.ok || running.value.peerId !== key.value.peerId) {
      doc.setIn(['node', 'private_key'], keyText.trim());
      await writeFileAtomic(confFile, doc.toString(), { mode: 0o600 });
      keyChanged = true;
    }
    await fs.rm(keyFile); // conf.yaml holds it now, durably
  } else if (!running.ok || running.value.peerId !== next.libp2p.peer_id) {
    throw new FedError('CLI_INVALID', `the new card is peer ${next.libp2p.peer_id}, but ${confFile}'s node.private_key is ${running.ok ? `peer ${running.value.peerId}` : 'unreadable'} and ${keyFile} is gone`);
  }
  const own = path.join(o.dir, CARD_FILE);
  const cardBackup = await readIfExists(own) === undefined ? '' : await moveAside(own, 'rotated');
  await fs.rename(cardFile, own);
  await fsyncDir(o.dir);
  return { epoch, peerId: next.libp2p.peer_id, keyChanged, cardBackup };
}
