// btcfed member rotate, on real files: the prepared card and key, apply refused until the member's
// consensus seats the new card (the seat is given here; test/reconfig-process.test.ts asks a real
// member), conf.yaml's node.private_key swapped durably, and a second apply after a crash half-way.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { parseCardText, parsePrivateKey } from '#libs/config/index.ts';
import { generateIdentity } from '#libs/config/identity.ts';
import { isFedError } from '#libs/errors/index.ts';
import { CARD_FILE } from '../cli/member.ts';
import { NEXT_CARD_FILE, NEXT_KEY_FILE, applyRotation, prepareRotation, type SeatOf } from '../cli/rotate.ts';

async function memberDir() {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-rotate-'));
  const id = await generateIdentity();
  const publicKey = randomBytes(32).toString('hex');
  const card = { version: 1, name: 'm3', slh_dsa: { param_set: 'slh-dsa-sha2-128f', public_key: publicKey },
    libp2p: { peer_id: id.peerId, public_key: id.publicKey, addresses: ['/ip4/127.0.0.1/tcp/7233'] } };
  await fs.writeFile(path.join(dir, CARD_FILE), stringify(card));
  await fs.writeFile(path.join(dir, 'conf.yaml'), `# m3\nnode:\n  name: m3\n  private_key: ${id.privateKey}\nconsensus:\n  keep_blocks: 64 # kept\n`);
  return { dir, id, publicKey };
}

const peerOfConf = async (dir: string) => {
  const conf = parse(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8')) as { node: { private_key: string } };
  const k = parsePrivateKey(conf.node.private_key);
  assert.ok(k.ok);
  return k.value.peerId;
};

test('a new libp2p identity: prepared beside the running one, applied only once seated, then the member\'s', async () => {
  const { dir, id, publicKey } = await memberDir();
  const p = await prepareRotation({ dir, libp2p: true });
  assert.notEqual(p.card.libp2p.peer_id, id.peerId);
  assert.equal(p.card.slh_dsa.public_key, publicKey, 'the SLH-DSA key stays');
  assert.deepEqual(p.card.libp2p.addresses, ['/ip4/127.0.0.1/tcp/7233']);
  assert.equal(parseCardText(await fs.readFile(p.cardFile, 'utf8'), p.cardFile).libp2p.peer_id, p.card.libp2p.peer_id);
  assert.equal((await fs.stat(p.keyFile!)).mode & 0o777, 0o600);
  const cardText = await fs.readFile(p.cardFile, 'utf8');
  assert.ok(!cardText.includes((await fs.readFile(p.keyFile!, 'utf8')).trim()), 'the private key is not in the card');
  await assert.rejects(prepareRotation({ dir, libp2p: true }), /a rotation is already prepared/);

  // Before the change commits: refused, nothing changed.
  const old: SeatOf = async () => ({ epoch: 1, seat: { peerId: id.peerId, publicKey } });
  await assert.rejects(applyRotation({ dir, seatOf: old }), (e: unknown) => isFedError(e, 'ROTATION_NOT_SEATED') && /epoch 1 .* seats m3 as peer /.test(e.message));
  const gone: SeatOf = async () => ({ epoch: 2, seat: undefined });
  await assert.rejects(applyRotation({ dir, seatOf: gone }), /seats m3 nowhere/);
  assert.equal(await peerOfConf(dir), id.peerId);
  await fs.access(p.keyFile!);

  const seated: SeatOf = async () => ({ epoch: 2, seat: { peerId: p.card.libp2p.peer_id, publicKey } });
  const r = await applyRotation({ dir, seatOf: seated });
  assert.equal(r.keyChanged, true);
  assert.equal(await peerOfConf(dir), p.card.libp2p.peer_id);
  assert.match(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8'), /^# m3\n[\s\S]*keep_blocks: 64 # kept/, 'the rest of conf.yaml as the operator wrote it');
  await assert.rejects(fs.access(p.keyFile!), 'the next key file is gone once conf.yaml holds it');
  assert.equal(parseCardText(await fs.readFile(path.join(dir, CARD_FILE), 'utf8'), CARD_FILE).libp2p.peer_id, p.card.libp2p.peer_id);
  assert.equal(parseCardText(await fs.readFile(r.cardBackup, 'utf8'), r.cardBackup).libp2p.peer_id, id.peerId);
  await assert.rejects(applyRotation({ dir, seatOf: seated }), /no rotation prepared/);
  await fs.rm(dir, { recursive: true, force: true });
});

test('apply again after a crash half-way does what is left', async () => {
  const { dir, publicKey } = await memberDir();
  const p = await prepareRotation({ dir, libp2p: true });
  const seated: SeatOf = async () => ({ epoch: 2, seat: { peerId: p.card.libp2p.peer_id, publicKey } });
  // The crash: conf.yaml written with the new key, the next card not yet the member's (key file still there).
  const conf = parse(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8')) as { node: { private_key: string } };
  conf.node.private_key = (await fs.readFile(p.keyFile!, 'utf8')).trim();
  await fs.writeFile(path.join(dir, 'conf.yaml'), stringify(conf));
  const r = await applyRotation({ dir, seatOf: seated });
  assert.equal(r.keyChanged, false, 'conf.yaml already held it');
  assert.equal(await peerOfConf(dir), p.card.libp2p.peer_id);
  await assert.rejects(fs.access(path.join(dir, NEXT_KEY_FILE)));
  await assert.rejects(fs.access(path.join(dir, NEXT_CARD_FILE)));
  await fs.rm(dir, { recursive: true, force: true });
});

test('a standby signer\'s key alone: the peer id stays, conf.yaml is not touched; bad input refused with the field', async () => {
  const { dir, id, publicKey } = await memberDir();
  await assert.rejects(prepareRotation({ dir, libp2p: false }), /give --libp2p .*--public-key/);
  await assert.rejects(prepareRotation({ dir, libp2p: false, publicKey }), /is the member's current key/);
  await assert.rejects(prepareRotation({ dir, libp2p: true, publicKey: 'ab'.repeat(31) }), /slh_dsa\.public_key.*32 bytes/);
  await assert.rejects(fs.access(path.join(dir, NEXT_KEY_FILE)), 'a refused prepare leaves no key behind');
  const next = randomBytes(32).toString('hex');
  const p = await prepareRotation({ dir, libp2p: false, publicKey: next.toUpperCase() });
  assert.equal(p.keyFile, undefined);
  assert.equal(p.card.libp2p.peer_id, id.peerId);
  assert.equal(p.card.slh_dsa.public_key, next);
  const before = await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8');
  const r = await applyRotation({ dir, seatOf: async () => ({ epoch: 4, seat: { peerId: id.peerId, publicKey: next } }) });
  assert.equal(r.keyChanged, false);
  assert.equal(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8'), before);
  await fs.rm(dir, { recursive: true, force: true });
});
