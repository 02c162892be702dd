// Writes the seed corpus (fuzz/corpus/<target>/*.hex) from the project's own encoders: the frames,
// requests, events and files a devnet member actually sends and reads, with fixed values so the
// corpus is the same on every run. Run after a wire or schema change: `node fuzz/capture.ts`.
// Must never write key material: configs carry public keys and peer ids only.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { blockHash, sha256 } from '#libs/crypto/index.ts';
import { Phase, genesisBlock, genesisQC, type Block, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import { encodeFrame, qcToWire, type Frame } from '#libs/wire/index.ts';
import { AttachRequest, PeerExchangeMessage, PresenceMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { BlockCommitted, ConfigReloaded, EquivocationEvidence, PeersChanged, SignerRefused, ViewChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import { assembleGenesis, parsePublicKey, type MemberCard } from '#libs/config/index.ts';
import { subject } from '#libs/events/subjects.ts';
import { CORPUS_DIR, loadCorpus } from './corpus.ts';
import { toHex } from './engine.ts';
import { CHAIN, SIG_BYTES, filled } from './targets/wire-values.ts';
import { streamOf } from './targets/gateway-framing.ts';
import { OTHERS, SELF } from './targets/peer-exchange.ts';
import { encodeValid } from './targets/signer-request.ts';
import { eventInput, CODECS } from './targets/events-codec.ts';
import { SERVED, apiInput } from './targets/public-api.ts';
import { SET as RECONFIG_SET } from './targets/reconfig-tx.ts';
import { encodeReconfigTx } from '#libs/validators/index.ts';
import { encodeGroup } from '../services/consensus/batch-codec.ts';

const corpus = new Map<string, Uint8Array[]>();
const add = (target: string, b: Uint8Array) => { corpus.set(target, [...(corpus.get(target) ?? []), b]); };

// ------------------------------------------------------------------ a short chain, as a devnet builds it
const genesis = genesisBlock(CHAIN, blockHash);
const sig = (who: number, what: number) => filled(SIG_BYTES, who * 1000 + what);
const qcOn = (b: Block, phase: QuorumCert['phase'], view: number): QuorumCert => ({ phase, view, blockHash: b.hash, signers: [0, 1, 2], signatures: [sig(0, view), sig(1, view), sig(2, view)] });
const tx = (i: number) => new TextEncoder().encode(`{"transfer":${i},"memo":"fuzz seed"}`);
const blocks: Block[] = [genesis];
for (let h = 1; h <= 3; h++) {
  const parent = blocks[h - 1]!;
  const txs = h === 2 ? [] : [tx(h), tx(h + 10)];
  const header = { chainId: CHAIN, epoch: 0, height: h, view: h + 1, parentHash: parent.hash, proposer: (h + 1) % 4, timestampMs: 1_760_000_000_000 + h * 1000,
    txRoot: sha256(Uint8Array.from(txs.flatMap((t) => [...t]))), stateHash: sha256(Uint8Array.of(h)) };
  blocks.push({ header, hash: blockHash(header), txs });
}
const [, b1, b2, b3] = blocks as [Block, Block, Block, Block];
const frames: Frame[] = [
  { type: 'consensus', message: { type: 'proposal', view: 2, block: b1, justify: genesisQC(genesis), sender: 2, signature: sig(2, 2) } },
  { type: 'consensus', message: { type: 'proposal', view: 4, block: b3, justify: qcOn(b2, Phase.PREPARE, 3), sender: 0, signature: sig(0, 4) } },
  { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.PREPARE, view: 4, blockHash: b3.hash, sender: 1, signature: sig(1, 4) } },
  { type: 'consensus', message: { type: 'vote', epoch: 0, phase: Phase.COMMIT, view: 4, blockHash: b3.hash, sender: 3, signature: sig(3, 4) } },
  { type: 'consensus', message: { type: 'new-view', epoch: 0, view: 5, highQC: qcOn(b3, Phase.PREPARE, 4), sender: 3, signature: sig(3, 5) } },
  { type: 'consensus', message: { type: 'qc', epoch: 0, qc: qcOn(b3, Phase.PRE_COMMIT, 4), sender: 0 } },
  { type: 'block-request', requestId: 7, hashes: [b2.hash, b3.hash], fromHeight: 0, maxBlocks: 64 },
  { type: 'block-request', requestId: 8, hashes: [], fromHeight: 1, maxBlocks: 16 },
  { type: 'block-response', requestId: 7, blocks: [{ block: b2, qc: qcOn(b2, Phase.PREPARE, 3) }, { block: b3, qc: undefined }] },
  { type: 'block-response', requestId: 9, blocks: [{ block: b1, qc: undefined }], epochEnd: { suffix: [b2.header, b3.header], qc: qcOn(b3, Phase.COMMIT, 4) } },
  { type: 'tx-batch', txs: [tx(1), tx(2), tx(3)] },
  { type: 'block-response', requestId: 10, blocks: [], oldestHeight: 421 },
  { type: 'checkpoint-request', requestId: 11, fromEpoch: 0 },
  { type: 'checkpoint-response', requestId: 11, epochs: [{ last: b1, suffix: [b2.header], qc: qcOn(b2, Phase.COMMIT, 3) }], tip: { block: b3, qc: qcOn(b3, Phase.COMMIT, 4) } },
  { type: 'history-request', requestId: 12, belowHeight: 3, max: 4096 },
  { type: 'history-response', requestId: 12, summaries: [{ header: b2.header, txIds: [sha256(tx(1))] }, { header: b1.header, txIds: [] }] },
  { type: 'consensus', message: { type: 'proposal', view: 4, block: { ...b3, txs: [] }, justify: qcOn(b2, Phase.PREPARE, 3), sender: 0, signature: sig(0, 4) },
    parts: [{ batch: { digest: sha256(tx(3)), author: 1, count: 1, bytes: tx(3).length } }, { tx: tx(13) }] },
  { type: 'batch-request', requestId: 13, digests: [sha256(tx(3))] },
  { type: 'batch-response', requestId: 13, batches: [[tx(3)]] },
];
for (const f of frames) add('wire-frame', encodeFrame(CHAIN, f));
// The consensus stream carries the same frames behind their length prefixes (small ones, whole).
add('gateway-framing', Uint8Array.from([0, ...streamOf([encodeFrame(CHAIN, frames[2]!), encodeFrame(CHAIN, frames[6]!)])]));
add('gateway-framing', Uint8Array.from([3, ...streamOf([encodeFrame(CHAIN, frames[10]!), encodeFrame(CHAIN, frames[7]!), new Uint8Array()])]));
add('gateway-framing', Uint8Array.from([200, ...streamOf([encodeFrame(CHAIN, frames[0]!).subarray(0, 60_000)])]));

// ------------------------------------------------------------------ peer exchange
const addrs = ['/ip4/203.0.113.10/tcp/7105', '/dns4/m1.example.org/tcp/7105', '/ip6/2001:db8::7/tcp/7105'];
const exchange: PeerExchangeMessage[] = [
  { body: { $case: 'request', value: { limit: 200 } } },
  { body: { $case: 'list', value: { peers: [{ publicKey: SELF.publicKey, addresses: [addrs[0]!] }, ...OTHERS.map((k, i) => ({ publicKey: k, addresses: addrs.slice(0, i + 1) }))] } } },
  { body: { $case: 'announce', value: { peers: [{ publicKey: OTHERS[0]!, addresses: ['/ip4/198.51.100.3/tcp/7105'] }] } } },
];
for (const m of exchange) add('peer-exchange', streamOf([PeerExchangeMessage.encode(m).finish()]));
for (const consensusAttached of [true, false]) add('presence', streamOf([PresenceMessage.encode({ consensusAttached, seq: Date.UTC(2026, 10, 27), catchingUp: false }).finish()]));
add('presence', streamOf([PresenceMessage.encode({ consensusAttached: false, seq: Date.UTC(2026, 10, 30), catchingUp: true }).finish()])); // an engine catching up
add('presence', streamOf([PresenceMessage.encode({ consensusAttached: false, seq: 0, catchingUp: false }).finish()])); // unordered: a gateway before seq
// A later version's message: a field this one does not know, after the one it does.
add('presence', streamOf([Uint8Array.from([...PresenceMessage.encode({ consensusAttached: true, seq: 1, catchingUp: false }).finish(), 0x22, 0x02, 0x68, 0x69])]));

// ------------------------------------------------------------------ signer requests
const signs: SignRequest[] = [
  { kind: 'proposal', epoch: 0, view: 4, block: b3, justify: qcOn(b2, Phase.PREPARE, 3) },
  { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 4, blockHash: b3.hash, header: b3.header, justify: qcOn(b2, Phase.PREPARE, 3) },
  { kind: 'vote', epoch: 0, phase: Phase.PRE_COMMIT, view: 4, blockHash: b3.hash, prepareQC: qcOn(b3, Phase.PREPARE, 4) },
  { kind: 'vote', epoch: 0, phase: Phase.COMMIT, view: 4, blockHash: b3.hash, precommitQC: qcOn(b3, Phase.PRE_COMMIT, 4) },
  { kind: 'new-view', epoch: 0, view: 5, highQC: qcOn(b3, Phase.PREPARE, 4) },
];
for (const r of signs) add('signer-request', encodeValid(r));

// ------------------------------------------------------------------ public API requests (what cli/ and the examples send)
add('public-api', apiInput('submitTransaction', { tx: tx(1) }));
add('public-api', apiInput('submitTransactions', { txs: [tx(1), tx(2), tx(3)] }));
add('public-api', apiInput('getTransaction', { txHash: SERVED.tx, withProof: true }));
add('public-api', apiInput('getStatus', {}));
add('public-api', apiInput('getBlock', { by: { $case: 'height', value: 3 } }));
add('public-api', apiInput('getBlock', { by: { $case: 'hash', value: SERVED.block } }));
add('public-api', apiInput('listBlocks', { fromHeight: 1, limit: 100, headersOnly: false }));
add('public-api', apiInput('getEpochs', { fromEpoch: 0, limit: 16 }));
add('public-api', apiInput('getEvidence', { fromEpoch: 0, fromView: 0, afterSeq: 0, limit: 10 }));

// ------------------------------------------------------------------ events
const idx = (c: unknown) => CODECS.indexOf(c as never);
const at = 1_760_000_000_000;
add('events-codec', eventInput(idx(BlockCommitted), subject('m0', 'consensus', 'block.committed'), BlockCommitted.encode({
  member: 'm0', height: 3, blockHash: b3.hash, header: b3.header, txCount: 2, txHashes: b3.txs.map((t) => sha256(t)), commitQc: qcToWire(qcOn(b3, Phase.COMMIT, 4)), atMs: at,
}).finish()));
add('events-codec', eventInput(idx(ConfigReloaded), subject('m0', 'store', 'config.reloaded'), ConfigReloaded.encode({
  member: 'm0', version: 4, trigger: 1, confSha256: 'ab'.repeat(32), peersSha256: 'cd'.repeat(32), changedFiles: ['peers.yaml'], durationSeconds: 0.012, atMs: at,
}).finish()));
add('events-codec', eventInput(idx(PeersChanged), subject('m0', 'store', 'peers.changed'), PeersChanged.encode(PeersChanged.fromPartial({ member: 'm0', atMs: at })).finish()));
add('events-codec', eventInput(idx(ViewChanged), subject('m1', 'consensus', 'view.changed'), ViewChanged.encode({ member: 'm1', view: 9, leader: 1, reason: 'timeout', atMs: at, epoch: 1, leaderName: 'm1' }).finish()));
add('events-codec', eventInput(idx(EquivocationEvidence), subject('m1', 'consensus', 'equivocation'), EquivocationEvidence.encode({
  member: 'm1', offender: 2, view: 4, phase: 1, first: encodeFrame(CHAIN, frames[2]!), second: encodeFrame(CHAIN, frames[3]!), atMs: at, epoch: 0, offenderName: 'm2' }).finish()));
add('events-codec', eventInput(idx(SignerRefused), subject('m0', 'signer', 'refused'), SignerRefused.encode({
  member: 'm0', rule: 'safe_node', reason: 'conflicts with the lock', requestType: 'vote', view: 4, phase: 1, atMs: at }).finish()));

// ------------------------------------------------------------------ config files and genesis
const ids = OTHERS.map((k) => ({ publicKey: k, peerId: (parsePublicKey(k) as { ok: true; value: { peerId: string } }).value.peerId }));
const slh = (i: number) => toHex(filled(32, 77 + i));
const validators = ids.map((id, i) => ({ name: `m${i}`, peer_id: id.peerId, public_key: slh(i) }));
const text = (kind: number, doc: unknown) => Uint8Array.from([kind, ...new TextEncoder().encode(stringify(doc))]);
add('config-files', text(0, {
  node: { name: 'm0' }, network: { addresses: ['/ip4/127.0.0.1/tcp/7105', '/ip6/::1/tcp/0'] },
  peers: { exchange_interval: '30s', connection_timeout: 5 }, logging: { level: 'info', format: 'json' },
  services: { store: { listen: '[::1]:7100' } }, consensus: { chain_id: CHAIN, base_timeout: '500ms', max_timeout: '1m' }, validators,
}));
add('config-files', text(0, { node: { name: 'solo' }, network: { addresses: ['/ip4/0.0.0.0/tcp/4001'] } }));
add('config-files', text(1, { peers: ids.map((id, i) => ({ public_key: id.publicKey, addresses: [addrs[i]!] })) }));
add('config-files', text(2, { member: 'm0', passphrase_file: 'pass', validators, allowed_clients: ['ab'.repeat(32)] }));
const cards: MemberCard[] = ids.map((id, i) => ({ version: 1, name: `m${i}`, slh_dsa: { param_set: 'slh-dsa-sha2-128f', public_key: slh(i) },
  libp2p: { peer_id: id.peerId, public_key: id.publicKey, addresses: [addrs[i]!] } }));
for (const c of cards) add('genesis-card', text(0, c));
add('genesis-card', text(1, assembleGenesis({ chainId: CHAIN, baseTimeout: '1s', cards: cards.map((card) => ({ card, from: `${card.name}.yaml` })) })));

// ------------------------------------------------------------------ reconfiguration transactions (btcfed reconfigure assemble)
{
  const key = (i: number) => filled(32, 7000 + i);
  const ok = [0, 1, 3].map((validator) => ({ validator, signature: filled(SIG_BYTES, 900 + validator) }));
  const m4 = { kind: 'add' as const, name: 'm4', publicKey: key(4) };
  add('reconfig-tx', encodeReconfigTx({ change: { chainId: CHAIN, epoch: 0, ops: [{ ...m4, peerId: 'peer-of-m4', addresses: ['/ip4/10.0.0.4/tcp/4001', '/dns4/m4.example.org/tcp/4001'] }] }, approvals: ok }));
  add('reconfig-tx', encodeReconfigTx({ change: { chainId: CHAIN, epoch: 0, ops: [{ kind: 'remove', name: 'm2' }] }, approvals: ok }));
  add('reconfig-tx', encodeReconfigTx({ change: { chainId: CHAIN, epoch: 0, ops: [{ kind: 'rotate', name: 'm1', peerId: RECONFIG_SET.byIndex(1).peerId, publicKey: key(8) }] }, approvals: ok }));
  add('reconfig-tx', encodeReconfigTx({ change: { chainId: CHAIN, epoch: 0, ops: [{ kind: 'remove', name: 'm2' }, { kind: 'params', baseTimeoutMs: 1500, idleHeartbeatMs: 3000 }] }, approvals: ok }));
  // The same passed on to the other validators (its approvals "verify" in the target when their first byte is 1).
  const passing = ok.map((a) => ({ ...a, signature: Uint8Array.from([1, ...a.signature.subarray(1)]) }));
  const forward = (epoch: number, approvals: typeof ok, ops: Parameters<typeof encodeReconfigTx>[0]['change']['ops']) =>
    encodeFrame(CHAIN, { type: 'reconfig-forward', epoch, tx: encodeReconfigTx({ change: { chainId: CHAIN, epoch, ops }, approvals }) });
  add('change-forward', forward(0, passing, [{ kind: 'remove', name: 'm2' }]));
  add('change-forward', forward(0, passing, [{ kind: 'params', baseTimeoutMs: 2000, idleHeartbeatMs: 1000 }]));
  add('change-forward', forward(0, passing.slice(0, 2), [{ kind: 'remove', name: 'm2' }]));
  add('change-forward', forward(1, passing, [{ kind: 'remove', name: 'm1' }]));
  add('wire-frame', forward(0, ok, [{ kind: 'remove', name: 'm2' }]));
}

// ------------------------------------------------------------------ the Attach stream (what consensus writes to its gateway)
{
  const seats = ids.map((id, i) => ({ name: `m${i}`, peerId: id.peerId, publicKey: slh(i), addresses: i === 1 ? [addrs[1]!] : [] }));
  add('attach-request', AttachRequest.encode({ body: { $case: 'validators', value: { epoch: 1, validators: seats } } }).finish());
  add('attach-request', AttachRequest.encode({ body: { $case: 'send', value: { to: 1, toPeer: '', frame: encodeFrame(CHAIN, frames[0]!) } } }).finish());
  add('attach-request', AttachRequest.encode({ body: { $case: 'mute', value: { validator: 2, peerId: '', ms: 60_000, reason: 'offences' } } }).finish());
  add('attach-request', AttachRequest.encode({ body: { $case: 'participation', value: { catchingUp: true } } }).finish());
}

// ------------------------------------------------------------------ the batches on disk (what a member writes of the batches it holds)
{
  const batch = (holder: number, first: number, n: number) => ({ holder, author: holder, epoch: 2, atMs: 1_760_000_000_000 + first, txs: Array.from({ length: n }, (_, k) => tx(first + k)) });
  add('batch-disk-value', encodeGroup([{ digest: sha256(Uint8Array.of(1)), b: batch(1, 100, 10) }]));
  add('batch-disk-value', encodeGroup([1, 2, 3].map((h) => ({ digest: sha256(Uint8Array.of(h)), b: batch(h, h * 1000, h === 2 ? 1 : 4) }))));
  add('batch-disk-value', encodeGroup([{ digest: sha256(Uint8Array.of(9)), b: { holder: 3, author: 0, epoch: 0, atMs: 0, txs: [Uint8Array.of(0), new Uint8Array(250).fill(0xff)] } }]));
}

for (const [target, seeds] of corpus) {
  const dir = join(CORPUS_DIR, target);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  seeds.forEach((s, i) => writeFileSync(join(dir, `seed-${String(i).padStart(2, '0')}.hex`), `${toHex(s).replace(/(.{128})/g, '$1\n')}\n`));
  if (loadCorpus(target).length !== seeds.length) throw new Error(`corpus ${target} did not read back`);
  console.log(`capture: ${target} ${seeds.length} seeds`);
}
