// `npm run reconfig`: membership change at scale, on real processes, under an open-loop load.
// Four members start (store, signer, gateway, consensus each; libp2p, mTLS gRPC, NATS); then, each
// change proposed, approved on a quorum of the operators' own signers and submitted with the CLI:
//   epoch 0 → 1: add m4 (N = 5)            epoch 1 → 2: add m5 and m6 (N = 7)
//   epoch 2 → 3: remove m2 (N = 6), and the base view timeout set to 1.5 s (a params operation)
//   epoch 3 → 4: rotate m1's SLH-DSA key and libp2p identity (N = 6)
// Added members join as operators do (`member join --added`; no peers.yaml is edited: every gateway
// learns an added member's addresses from the change that seats it, its card's) and follow the
// chain until a change seats them; m2 is left running after its removal (it votes no more); an
// observer o0 joins in epoch 3 and follows to the end; m1's operator starts its new signer where the
// old one listened, puts its new libp2p key in force (`member rotate --apply`) and restarts m1's
// store, gateway and consensus. Throughout, clients submit
// transactions to the current validators at --rate a second. At the end: every transaction a member
// acknowledged is committed exactly once, every member holds the same block at every height it
// has, each boundary's stall (the last block of an epoch to the first of the next, by their
// times) is printed, and `btcfed verify` checks the final block from the genesis conf.yaml alone.
// One line ends it:
//   reconfig: epochs=E validators=4,5,7,6,6 acked=A lost=L duplicated=D disagreements=X light_client=ok|failed
// and it exits non-zero on any loss, duplicate, disagreement or light-client failure.
//   --rate N (default 40)   --short: the CI version, epoch 0 → 1 only (m4 added: a set larger than
//   genesis's)   --introduce: also list each added member in every peers.yaml by hand (what operators
//   did before a change carried its card's addresses; without it the members find each other from
//   the changes alone)   KEEP_RECONFIG=1 keeps the directory
//   --keep-blocks K (default 64, not with --short; 0: off): m1, m2 and m3 keep only their last K
//   blocks (consensus.keep_blocks), m0 keeps every block; a member added once they pruned joins
//   from a checkpoint (docs/reconfiguration.md), which the run reports with each store's size.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { toHex, txHash } from '#libs/crypto/index.ts';
import { call, callPatiently } from '#libs/rpc/index.ts';
import { bitmapToSigners } from '#libs/wire/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from '../test/support/store.ts';
import { until } from '../test/support/until.ts';
import { btcfedIn } from '../test/support/cli.ts';
import { startService, type ServiceProcess } from '../test/support/process.ts';
import { signerCli } from '../test/support/signer.ts';
import { allowOperator, approveAndAssemble, startAddedMember } from '../test/support/reconfig.ts';
import { freePortBlock } from '../test/support/ports.ts';

const { values: flags } = parseArgs({ options: { rate: { type: 'string', default: '40' }, short: { type: 'boolean', default: false },
  introduce: { type: 'boolean', default: false }, 'keep-blocks': { type: 'string', default: '64' } } });
const KEEP = flags.short ? 0 : Number(flags['keep-blocks']);
const RATE = Number(flags.rate);
if (!Number.isFinite(RATE) || RATE < 0 || RATE > 5000) throw new Error(`--rate ${flags.rate}: 0 to 5000 transactions a second`);

const basePort = await freePortBlock(21_000, 100);
const chainId = `rc-${randomBytes(3).toString('hex')}`;
const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-reconfig-run-'));
const { ok } = btcfedIn(() => dir);
const m = (name: string) => path.join(dir, name);
const clients = new Map<string, ConsensusServiceClient>();
const client = (name: string) => { let c = clients.get(name); if (!c) { c = consensusClient(m(name)); clients.set(name, c); } return c; };
const status = (name: string) => call(client(name).getStatus.bind(client(name)), {}, { deadlineMs: 5000 });
const say = (s: string) => console.log(`# reconfig: ${s}`);
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;

let net: Devnet | undefined;
const extra: ServiceProcess[] = [];
/** The members that vote now (load goes to them), and those still running but removed. */
let validators = ['m0', 'm1', 'm2', 'm3'];
const sizes = [4];

// The load: open loop, RATE a second to a current validator, each acknowledged one remembered.
/** Acknowledged transactions, by hash: the member that acknowledged each. */
const acked = new Map<string, string>();
let refused = 0;
let skipped = 0;
let inFlight = 0;
let loadOn = true;
let seq = 0;
const runLoad = async (): Promise<void> => {
  while (loadOn) {
    const tick = Date.now();
    for (let k = 0; k < RATE / 10; k++) {
      if (inFlight >= 400) { skipped++; continue; } // open loop: a member that does not answer is not waited for
      const to = validators[seq % validators.length]!;
      const tx = new TextEncoder().encode(`reconfig-load-${seq++}-${randomBytes(6).toString('hex')}`);
      inFlight++;
      void call(client(to).submitTransaction.bind(client(to)), { tx }, { deadlineMs: 5000 })
        .then(() => { acked.set(toHex(txHash(tx)), to); }, () => { refused++; })
        .finally(() => { inFlight--; });
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - tick))));
  }
};
let load: Promise<void> = Promise.resolve();

const epochOn = (who: readonly string[], epoch: number) => async () => ((await Promise.all(who.map(status))).every((s) => Number(s.epoch) === epoch) ? true : undefined);

/** Proposes `args` as a change of the current epoch, approves it on `approvers`, submits it to `to`; waits for `next` on `who`. */
async function change(label: string, args: string[], approvers: string[], to: string, next: number, who: string[]): Promise<number> {
  const file = m(`${label}.yaml`);
  await ok(['reconfigure', 'propose', '--member', m(to), ...args, '--out', file]);
  const tx = await approveAndAssemble(ok, file, approvers.map(m), m(to), m(`${label}.tx`));
  const submitted = Date.now();
  await ok(['reconfigure', 'submit', '--member', m(to), '--tx', tx]);
  await until(`epoch ${next} on ${who.join(', ')}`, epochOn(who, next), 180_000);
  const ms = Date.now() - submitted;
  say(`${label}: submitted → epoch ${next} on ${who.length} members in ${ms} ms (${elapsed()} in)`);
  return ms;
}

/** The consensus process of each added member (its log lines say how it started). */
const addedConsensus = new Map<string, ServiceProcess>();

/** Every member so far, added ones included (their dirs). */
const everyone = ['m0', 'm1', 'm2', 'm3'];

/**
 * What operators did for a new member before a change carried its card's addresses (--introduce):
 * each lists its address in its peers.yaml (hot reloaded), and the new member lists every member
 * added before it (genesis's peers.yaml names genesis's members only).
 */
async function introduce(name: string): Promise<void> {
  type Entry = { public_key: string; addresses: string[] };
  const entryOf = async (who: string): Promise<Entry> => {
    const card = parse(await fs.readFile(path.join(m(who), 'member-card.yaml'), 'utf8')) as { libp2p: { public_key: string; addresses: string[] } };
    return { public_key: card.libp2p.public_key, addresses: card.libp2p.addresses };
  };
  const add = async (dirName: string, entries: Entry[]) => {
    const file = path.join(m(dirName), 'peers.yaml');
    const doc = parse(await fs.readFile(file, 'utf8')) as { peers: Entry[] };
    const known = new Set(doc.peers.map((p) => p.public_key));
    const next = { ...doc, peers: [...doc.peers, ...entries.filter((e) => !known.has(e.public_key))] };
    await fs.writeFile(`${file}.tmp`, stringify(next));
    await fs.rename(`${file}.tmp`, file);
  };
  const mine = await entryOf(name);
  for (const other of everyone) await add(other, [mine]);
  await add(name, await Promise.all(everyone.filter((o) => !['m0', 'm1', 'm2', 'm3'].includes(o)).map(entryOf)));
  everyone.push(name);
}

/** Joins `name` (card made by member init) as a member to be added and starts its services. */
async function join(name: string, index: number): Promise<ServiceProcess> {
  // The passphrase stays in the member dir's secrets/, where a local run's signer reads it (as btcfed init's devnet does).
  const begun = Date.now();
  await ok(['member', 'init', '--name', name, '--out', m(name), '--host', '127.0.0.1', '--base-port', String(basePort + 10 * index), '--passphrase-file', '../secrets/signer-passphrase']);
  await ok(['member', 'join', '--genesis', path.join(m('m0'), 'genesis.yaml'), '--dir', m(name), '--added']);
  await allowOperator(m(name));
  if (flags.introduce) await introduce(name);
  else everyone.push(name);
  const made = Date.now();
  const { consensus } = await startAddedMember(m(name), NATS_URL, extra);
  addedConsensus.set(name, consensus);
  say(`${name}: made and joined by the CLI in ${made - begun} ms, its four services ready in ${Date.now() - made} ms (${elapsed()} in)`);
  return consensus;
}


const summary = { epochs: 1, lost: 0, duplicated: 0, disagreements: 0, lightClient: 'failed' };

/** Epochs 1 → 4: m5 and m6 added, m2 removed, m1's key and peer id rotated. */
async function grow(): Promise<void> {
  if (!net) throw new Error('no federation');
  // Epoch 1 → 2: m5 and m6 in one change (quorum of five: four).
  const [m5, m6] = [await join('m5', 5), await join('m6', 6)];
  await change('add-m5-m6', ['--add', `${path.join(m('m5'), 'member-card.yaml')},${path.join(m('m6'), 'member-card.yaml')}`], ['m0', 'm1', 'm2', 'm3'], 'm1', 2, validators);
  for (const p of [m5, m6]) await p.waitFor((l) => l.msg === 'consensus ready' && l.observer === undefined, 120_000);
  validators = [...validators, 'm5', 'm6'];
  sizes.push(7);

  // Epoch 2 → 3: m2 removed (quorum of seven: five). m2 keeps running: it votes no more. The same
  // change sets the federation's base view timeout to 1.5 s (genesis: 1 s; the heartbeat as it was, 0: a block every view).
  await change('remove-m2', ['--remove', 'm2', '--base-timeout', '1500ms', '--idle-heartbeat', '0'], ['m0', 'm1', 'm3', 'm4', 'm5'], 'm3', 3, validators);
  validators = validators.filter((v) => v !== 'm2');
  sizes.push(6);
  for (const v of validators) {
    const started = (await fs.readFile(path.join(m(v), 'logs', 'consensus.log'), 'utf8').catch(() => '')).split('\n').filter((l) => l.includes('"epoch started"'))
      .map((l) => JSON.parse(l) as { epoch: number; baseTimeoutMs: number; params: string }).find((l) => l.epoch === 3)
      ?? addedConsensus.get(v)?.lines.find((l) => l.msg === 'epoch started' && l.epoch === 3) as { baseTimeoutMs: number; params: string } | undefined;
    if (started?.baseTimeoutMs !== 1500 || started.params !== 'committed') throw new Error(`${v} did not start epoch 3 on the committed base timeout: ${JSON.stringify(started)}`);
  }
  say(`the six validators run epoch 3 on the committed base timeout (1.5 s)`);

  // An observer joins now, in epoch 3 (three epoch ends behind it, blocks pruned on m1–m3), and
  // follows to the end: checked with the members below.
  const begun = Date.now();
  await ok(['member', 'init', '--name', 'o0', '--out', m('o0'), '--host', '127.0.0.1', '--base-port', String(basePort + 90), '--passphrase-file', '../secrets/signer-passphrase']);
  await ok(['member', 'join', '--genesis', path.join(m('m0'), 'genesis.yaml'), '--dir', m('o0'), '--observer']);
  addedConsensus.set('o0', (await startAddedMember(m('o0'), NATS_URL, extra, { observer: true })).consensus);
  await until('o0 follows into epoch 3', epochOn(['o0'], 3), 120_000);
  say(`o0 (an observer) follows into epoch 3 ${Date.now() - begun} ms after its dir was made (${elapsed()} in)`);

  // Epoch 3 → 4: m1's key and peer id rotated (quorum of six: five). Its operator makes the new key in a signer of its own.
  const oldDir = path.join(m('m1'), 'signer');
  const newDir = path.join(m('m1'), 'signer-new');
  const oldConf = parse(await fs.readFile(path.join(oldDir, 'signer.yaml'), 'utf8')) as Record<string, unknown> & { listen: string; tls: Record<string, string>; passphrase_file: string };
  await fs.mkdir(path.join(newDir, 'tls'), { recursive: true, mode: 0o700 });
  for (const f of [oldConf.passphrase_file, oldConf.tls.ca_file!, oldConf.tls.cert_file!, oldConf.tls.key_file!]) await fs.copyFile(path.join(oldDir, f), path.join(newDir, f));
  await fs.writeFile(path.join(newDir, 'signer.yaml'), stringify({ ...oldConf, standby: true }));
  const keygen = signerCli(['keygen', '--data-dir', newDir]);
  if (keygen.status !== 0) throw new Error(`keygen: ${keygen.stderr}`);
  // And a new libp2p identity: m1 moves to another peer id in the same change (its new card).
  await ok(['member', 'rotate', '--dir', m('m1'), '--libp2p', '--public-key', keygen.stdout.trim()]);
  const newCard = path.join(m('m1'), 'member-card.next.yaml');
  const newPeer = (parse(await fs.readFile(newCard, 'utf8')) as { libp2p: { peer_id: string } }).libp2p.peer_id;
  await change('rotate-m1', ['--rotate', `m1=${newCard}`], ['m0', 'm3', 'm4', 'm5', 'm6'], 'm0', 4, validators);
  sizes.push(6);
  const old = net.procs.find((p) => p.member === 'm1' && p.service === 'signer')!;
  old.child.kill('SIGTERM');
  await new Promise((r) => old.child.once('exit', r));
  const fresh = startService('services/signer/main.ts', ['run', '--data-dir', newDir, '--listen', oldConf.listen, '--init', '--no-nats']);
  extra.push(fresh);
  await fresh.waitFor((l) => l.msg === 'signer ready', 20_000);
  await ok(['member', 'rotate', '--dir', m('m1'), '--apply']);
  for (const service of ['store', 'gateway', 'consensus'] as const) await net.restart(1, service);
  await until('m0\'s gateway connected to m1 at its new peer id', async () => ((await status('m0')).peers.some((p) => p.peerId === newPeer && p.state === 'connected') ? true : undefined), 60_000);
  // m1 is validator 1 of epoch 4 (m0, m1, m3, m4, m5, m6): a commit QC of epoch 4 with its signature.
  const signed = await until('a commit QC of epoch 4 signed by m1\'s new key', async () => {
    const top = Number((await status('m0')).committedHeight);
    const b = await call(client('m0').getBlock.bind(client('m0')), { by: { $case: 'height', value: top } }, { deadlineMs: 5000 });
    return Number(b.block!.header!.epoch) === 4 && bitmapToSigners('qc', b.qc!.signers).includes(1) ? top : undefined;
  }, 120_000);
  say(`m1 signs again with its new key, from its new peer id (a commit QC at height ${signed}; ${elapsed()} in)`);
  summary.epochs = 5;

}

let failed: string | undefined;
try {
  const members = await initFederation({ members: 4, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
  for (const [i, member] of members.entries()) await allowOperator(m(`m${i}`), member.operator);
  for (const name of KEEP > 0 ? ['m1', 'm2', 'm3'] : []) {
    const file = path.join(m(name), 'conf.yaml');
    const conf = parse(await fs.readFile(file, 'utf8')) as { consensus: Record<string, unknown> };
    conf.consensus.keep_blocks = KEEP;
    await fs.writeFile(file, stringify(conf));
  }
  net = await runDevnet({ dir, members: 4, basePort, natsUrl: NATS_URL, quiet: true });
  await until('a first commit everywhere', async () => ((await Promise.all(validators.map(status))).every((s) => Number(s.committedHeight) > 0) ? true : undefined));
  say(`4 members up in ${dir} (chain ${chainId}); load ${RATE} tx/s from now (${elapsed()} in)`);
  load = runLoad();

  // Epoch 0 → 1: m4 joins, follows, and is seated.
  const m4 = await join('m4', 4);
  await change('add-m4', ['--add', path.join(m('m4'), 'member-card.yaml')], ['m0', 'm1', 'm2'], 'm0', 1, validators);
  await m4.waitFor((l) => l.msg === 'consensus ready' && l.observer === undefined, 120_000);
  validators = [...validators, 'm4'];
  sizes.push(5);
  summary.epochs = 2;
  // m4 is validator 4: a commit QC with its vote (one a set as wide as genesis's could not carry).
  const byM4 = await until('a commit QC of epoch 1 signed by m4', async () => {
    const top = Number((await status('m0')).committedHeight);
    const b = await call(client('m0').getBlock.bind(client('m0')), { by: { $case: 'height', value: top } }, { deadlineMs: 5000 });
    return Number(b.block!.header!.epoch) === 1 && bitmapToSigners('qc', b.qc!.signers).includes(4) ? top : undefined;
  }, 120_000);
  say(`m4 votes: a commit QC with its signature at height ${byM4} (${elapsed()} in)`);
  if (!flags.short) await grow();

  // Let the load run in the last epoch a while, then stop it and let everything commit.
  await new Promise((r) => setTimeout(r, 10_000));
  loadOn = false;
  await load;
  await until('the submissions in flight answered', async () => (inFlight === 0 ? true : undefined), 30_000);
  say(`load stopped: ${acked.size} acknowledged, ${refused} refused or unanswered, ${skipped} not sent (over 400 in flight) (${elapsed()} in)`);

  // Every acknowledged transaction committed exactly once, read from m0's chain.
  const countTxs = async (): Promise<{ seen: Map<string, number>; top: number }> => {
    const c = client('m0');
    const top = Number((await status('m0')).committedHeight);
    const seen = new Map<string, number>();
    for (let from = 1; from <= top; from += 100) {
      const r = await callPatiently(c.listBlocks.bind(c), { fromHeight: from, limit: 100, headersOnly: false }, { deadlineMs: 60_000 });
      for (const b of r.blocks) for (const tx of b.block!.txs) { const h = toHex(txHash(tx)); seen.set(h, (seen.get(h) ?? 0) + 1); }
    }
    return { seen, top };
  };
  let counted = await countTxs();
  for (let k = 0; k < 6 && [...acked.keys()].some((h) => !counted.seen.has(h)); k++) {
    await new Promise((r) => setTimeout(r, 5_000));
    counted = await countTxs();
  }
  const lostOnes = [...acked.keys()].filter((h) => !counted.seen.has(h));
  summary.lost = lostOnes.length;
  if (lostOnes.length > 0) {
    const by = new Map<string, number>();
    for (const h of lostOnes) by.set(acked.get(h)!, (by.get(acked.get(h)!) ?? 0) + 1);
    say(`lost, by the member that acknowledged them: ${[...by].map(([who, n]) => `${who} ${n}`).join(', ')}`);
  }
  summary.duplicated = [...counted.seen.values()].filter((n) => n > 1).length;
  for (const h of lostOnes.slice(0, 5)) {
    const r = await call(client('m0').getTransaction.bind(client('m0')), { txHash: Buffer.from(h, 'hex'), withProof: false });
    say(`lost ${h.slice(0, 16)}…: m0 says ${Object.entries(TxStatus).find(([, v]) => v === r.status)?.[0] ?? r.status}`);
  }

  // Every member, the removed m2 included, holds m0's block at every height it has.
  const hashes = async (name: string, upTo: number): Promise<string[]> => {
    const c = client(name);
    const out: string[] = [];
    for (let from = 1; from <= upTo; from += 100) {
      const r = await callPatiently(c.listBlocks.bind(c), { fromHeight: from, limit: 100, headersOnly: true }, { deadlineMs: 60_000 });
      out.push(...r.blocks.filter((b) => Number(b.block!.header!.height) <= upTo).map((b) => toHex(b.blockHash)));
    }
    return out;
  };
  const reference = await hashes('m0', counted.top);
  if (!flags.short) await until(`the observer o0 at height ${counted.top}`, async () => (Number((await status('o0')).committedHeight) >= counted.top ? true : undefined), 60_000);
  for (const name of flags.short ? ['m1', 'm2', 'm3', 'm4'] : ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'o0']) {
    const theirs = await hashes(name, Math.min(counted.top, Number((await status(name)).committedHeight)));
    const differ = theirs.filter((h, i) => h !== reference[i]).length;
    if (differ > 0) say(`${name} disagrees with m0 at ${differ} heights`);
    summary.disagreements += differ;
  }

  // Every validator reaches every other: with no peers.yaml edited, the added members (m4, then
  // m5 and m6 together) were dialled where their changes said.
  const mesh = async (): Promise<string[]> => {
    const missing: string[] = [];
    for (const name of validators) {
      const s = await status(name);
      const connected = new Set(s.peers.filter((p) => p.state === 'connected').map((p) => p.validatorIndex));
      const others = validators.map((_, i) => i).filter((i) => i !== s.selfIndex);
      const absent = others.filter((i) => !connected.has(i));
      if (absent.length > 0) missing.push(`${name} reaches no validator ${absent.join(', ')}`);
    }
    return missing;
  };
  let gaps = await mesh();
  for (let k = 0; k < 10 && gaps.length > 0; k++) { await new Promise((r) => setTimeout(r, 2_000)); gaps = await mesh(); }
  if (gaps.length > 0) throw new Error(`the validators of the last epoch do not all reach each other: ${gaps.join('; ')}`);
  say(`each of the ${validators.length} validators reaches the ${validators.length - 1} others${flags.introduce ? '' : ' (no peers.yaml edited for the added members)'}`);

  // The stall at each boundary: the last block of an epoch to the first of the next, by their times.
  const c0 = client('m0');
  const ends = await call(c0.getEpochs.bind(c0), { fromEpoch: 0, limit: 16 }, { deadlineMs: 30_000 });
  for (const [e, p] of ends.proofs.entries()) {
    const last = p.last!.header!;
    const first = await call(c0.getBlock.bind(c0), { by: { $case: 'height', value: Number(last.height) + 1 } }, { deadlineMs: 5000 });
    say(`epoch ${e} ended at height ${Number(last.height)}; the first block of epoch ${e + 1} came ${Number(first.block!.header!.timestampMs) - Number(last.timestampMs)} ms after it`);
  }

  // How each added member (and the observer) started (replaying every block, or from a checkpoint), and each store's size.
  for (const name of [...everyone.filter((n) => !['m0', 'm1', 'm2', 'm3'].includes(n)), ...(flags.short ? [] : ['o0'])]) {
    const line = addedConsensus.get(name)?.lines.find((l) => l.msg === 'joined from a checkpoint: following from it');
    const f = line as { checkpointHeight: number; heights: number; epochs: number; ms: number } | undefined;
    say(f ? `${name} joined from a checkpoint at height ${f.checkpointHeight} (${f.epochs} epoch proof(s), ${f.heights} heights of history) in ${f.ms} ms`
      : `${name} replayed every block from genesis`);
  }
  const sizesOf = await Promise.all([...everyone, ...(flags.short ? [] : ['o0'])].map(async (name) => `${name} ${((await fs.stat(path.join(m(name), 'consensus', 'data.mdb')).catch(() => ({ size: 0 }))).size / 1024 / 1024).toFixed(1)} MiB`));
  say(`block stores at height ${counted.top}${KEEP > 0 ? ` (m1, m2, m3 keep ${KEEP} blocks)` : ''}: ${sizesOf.join(', ')}`);

  // A light client with nothing but genesis's conf.yaml checks the final block, asking m6.
  const verified = await ok(['verify', '--member', m(flags.short ? 'm4' : 'm6'), '--height', String(counted.top), '--trust', path.join(m('m0'), 'conf.yaml')]).catch((err: unknown) => `failed: ${String(err)}`);
  say(verified.trim());
  summary.lightClient = new RegExp(`^verified: .* of epoch ${summary.epochs - 1} `).test(verified) ? 'ok' : 'failed';
} catch (err) {
  failed = err instanceof Error ? err.message : String(err);
  say(`FAILED after ${elapsed()}: ${failed}`);
} finally {
  loadOn = false;
  for (const c of clients.values()) c.close();
  for (const p of [...extra].reverse()) await p.stop().catch(() => undefined);
  await net?.stop().catch(() => undefined);
  if (failed || process.env.KEEP_RECONFIG) say(`kept ${dir}`); else await fs.rm(dir, { recursive: true, force: true });
}
say(`${elapsed()} in all`);
console.log(`reconfig: epochs=${summary.epochs} validators=${sizes.join(',')} acked=${acked.size} lost=${summary.lost} duplicated=${summary.duplicated} disagreements=${summary.disagreements} light_client=${summary.lightClient}`);
process.exit(failed || summary.lost > 0 || summary.duplicated > 0 || summary.disagreements > 0 || summary.lightClient !== 'ok' ? 1 : 0);
