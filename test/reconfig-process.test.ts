// Changes of the validator set through consensus, on real processes (docs/reconfiguration.md):
// a 5-member federation (store, signer, gateway and consensus per member; libp2p, mTLS gRPC, NATS)
// removes m2, then rotates m3's SLH-DSA key and moves it to a new libp2p peer id, as its
// operators would, with the CLI: propose, approve on a quorum of their own signers with their
// operator certificates, assemble, submit to one member.
// The removal ends epoch 0 on every member at one height: m2's signer signs nothing more and its
// consensus stops voting; every other member's consensus tells its gateway epoch 1's set, so m2 is
// no validator there any more and m3 and m4 move up to indices 2 and 3; the four commit epoch 1.
// The rotation is proposed and approved against epoch 1's set (the CLI asks the member): m3's
// operator makes the new key in a signer of its own (standby) and a new libp2p identity (`member
// rotate --libp2p`: its new card), the change ends epoch 1; m3's old signer signs nothing more, the
// other three are epoch 2's quorum. m3's operator then puts the new signer where the old one
// listened, applies the new libp2p key (`member rotate --apply`, refused before the change
// committed), restarts m3's store, gateway and consensus, which shows the signer both proofs it
// missed: m3 signs epoch 2's QCs with its new key, which verify under it and not under the old one,
// and every gateway numbers its new peer id as validator 2 and its old one as no validator.
// Then m5 is added in epoch 2: its operator joins it to the chain as a member to be added (`member
// join --added`: genesis's set, its signer standing by) and starts its services; its consensus
// follows the chain as an observer, each epoch's end proven by the proof served with its last
// block, until the change adding it commits; it then starts again in place as a validator, and its
// signer, shown the proofs, signs epoch 3's QCs. The same change sets the federation's base view
// timeout and idle heartbeat: every member runs epoch 3 on them, m5 included (from the proofs).
// Refused on the way: a transaction with a forged approval.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { createSlhDsa, fromHex, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { call, createClient } from '#libs/rpc/index.ts';
import { bitmapToSigners, encodeFrame } from '#libs/wire/index.ts';
import { Phase } from '#libs/hotstuff/index.ts';
import { memberSecurityFromDir } from '#libs/service/index.ts';
import { GatewayServiceClient, type AttachResponse } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { openKey } from '../services/signer/keyfile.ts';
import { signerPassphrasePath } from '../cli/member.ts';
import { ConsensusServiceClient, TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation, memberPorts } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { until } from './support/until.ts';
import { btcfedIn } from './support/cli.ts';
import { startService, type ServiceProcess } from './support/process.ts';
import { signerCli } from './support/signer.ts';
import { pino } from 'pino';
import { Mempool } from '../services/consensus/mempool.ts';
import { MempoolJournal } from '../services/consensus/mempool-journal.ts';
import { allowOperator, approveAndAssemble as approveAll, startAddedMember } from './support/reconfig.ts';
import { freePortBlock } from './support/ports.ts';
import { WARN_OR_WORSE, logTail } from './support/logs.ts';

const N = 5;
const basePort = await freePortBlock(20_000, 120);
const chainId = `rp-${randomBytes(3).toString('hex')}`;
let dir: string;
let net: Devnet | undefined;
let newSigner: ServiceProcess | undefined;
const m5Procs: ServiceProcess[] = [];
const clients: ConsensusServiceClient[] = [];
const { ok, refused } = btcfedIn(() => dir);
const m = (i: number | string) => path.join(dir, typeof i === 'number' ? `m${i}` : i);
const status = (i: number) => call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 });

async function reportLogs(): Promise<void> {
  for (let i = 0; i < N; i++) {
    for (const service of ['consensus', 'signer']) {
      for (const l of await logTail(path.join(m(i), 'logs', `${service}.log`), (x) => WARN_OR_WORSE.test(x), 8)) console.log(`[m${i}/${service}] ${l}`);
    }
  }
}

describe('a change of the validator set on real processes', { timeout: 600_000 }, () => {
  let failed = false;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-reconfig-'));
    const members = await initFederation({ members: N, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    // Each operator's certificate (tls/operator.pem, its admin certificate) may ask its signer for approvals.
    for (const [i, member] of members.entries()) await allowOperator(m(i), member.operator);
    // A member the services cannot add yet: its card, made on its operator's host.
    await ok(['member', 'init', '--name', 'm5', '--out', m('m5'), '--host', '127.0.0.1', '--base-port', String(basePort + 70), '--passphrase-file', '../secrets/signer-passphrase']);
    net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
    for (let i = 0; i < N; i++) clients.push(consensusClient(m(i)));
  });
  after(async () => {
    for (const c of clients) c.close();
    await newSigner?.stop();
    for (const p of [...m5Procs].reverse()) await p.stop();
    await net?.stop();
    if (failed) await reportLogs();
    if (failed) for (const [k, p] of m5Procs.entries()) await fs.writeFile(m(`m5-${k}.log`), p.lines.map((l) => JSON.stringify(l)).join('\n') + `\n${p.stderr()}`);
    if (failed || process.env.KEEP_E2E) console.log(`kept ${dir}`); else await fs.rm(dir, { recursive: true, force: true });
  });

  /** Each operator in `who` approves `change` on its own signer; m0 assembles: the transaction's file. */
  const approveAndAssemble = (change: string, who: number[], out: string): Promise<string> => approveAll(ok, change, who.map(m), m(0), out);

  /** The last block of `epoch` on each of `who`, found by a binary search over heights (epochs only grow with height): one block at one height everywhere. */
  async function lastBlockOf(epoch: number, who: number[]): Promise<{ height: number; hash: string }> {
    const ends = await Promise.all(who.map(async (i) => {
      const c = clients[i]!;
      const at = (h: number) => call(c.getBlock.bind(c), { by: { $case: 'height', value: h } }, { deadlineMs: 5000 });
      const epochAt = async (h: number) => Number((await at(h)).block!.header!.epoch);
      // A member may not have committed the next epoch's first block yet: wait for a tip past the epoch.
      const top = await until(`a block after epoch ${epoch} on m${i}`, async () => {
        const h = Number((await status(i)).committedHeight);
        return h > 0 && (await epochAt(h)) > epoch ? h : undefined;
      }, 60_000);
      let lo = 0; // epoch ≤ `epoch` (genesis, or found so)
      let hi = top; // epoch > `epoch`
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if ((await epochAt(mid)) > epoch) hi = mid; else lo = mid;
      }
      return { height: lo, hash: toHex((await at(lo)).blockHash) };
    }));
    for (const e of ends) assert.deepEqual(e, ends[0]);
    return ends[0]!;
  }

  async function commitSome(tag: string, who: number[]): Promise<void> {
    const txs = Array.from({ length: 12 }, (_, i) => new TextEncoder().encode(`${tag}-${i}-${randomBytes(4).toString('hex')}`));
    await Promise.all(txs.map((tx, i) => { const c = clients[who[i % who.length]!]!; return call(c.submitTransaction.bind(c), { tx }); }));
    await until(`every ${tag} transaction committed`, async () => {
      for (const tx of txs) {
        const r = await call(clients[who[0]!]!.getTransaction.bind(clients[who[0]!]!), { txHash: txHash(tx), withProof: false });
        if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
      }
      return true;
    }, 120_000);
  }

  const epochOn = (who: number[], epoch: number) => async () => ((await Promise.all(who.map(status))).every((s) => Number(s.epoch) === epoch) ? true : undefined);
  const genesis = async () => parse(await fs.readFile(path.join(m(0), 'conf.yaml'), 'utf8')) as { validators: Array<{ name: string; peer_id: string; public_key: string }> };

  test('m2 removed through consensus: epoch 0 ends everywhere at one height, m2 votes no more, every gateway renumbers the validators', async () => {
    try {
      await until('a first commit everywhere', async () => ((await Promise.all([0, 1, 2, 3, 4].map(status))).every((s) => Number(s.committedHeight) > 0) ? true : undefined));
      const said = await ok(['reconfigure', 'propose', '--member', m(0), '--remove', 'm2', '--out', m('remove.yaml')]);
      assert.match(said, /checked against member m0's current epoch, 0/);
      const tx = await approveAndAssemble(m('remove.yaml'), [0, 1, 3, 4], m('remove.tx'));
      // Refused by the member, naming why: a forged approval.
      const forged = await fs.readFile(tx);
      forged[forged.length - 1]! ^= 1; // the last approval's signature
      await fs.writeFile(m('forged.tx'), forged);
      await refused(['reconfigure', 'submit', '--member', m(1), '--tx', m('forged.tx')], /approval|signature/);
      assert.match(await ok(['reconfigure', 'submit', '--member', m(1), '--tx', tx]), /change [0-9a-f]{64} submitted: it ends epoch 0/);

      const submitted = Date.now();
      // When each member got there, for the log: one slow member names itself. Each member on its
      // own: m2's consensus restarts as an observer at the switch and does not answer meanwhile.
      const reached = new Map<number, number>();
      await until('epoch 1 on every member, m2 included', async () => {
        const st = await Promise.allSettled([0, 1, 2, 3, 4].map(status));
        st.forEach((s, i) => { if (s.status === 'fulfilled' && Number(s.value.epoch) === 1 && !reached.has(i)) reached.set(i, Date.now() - submitted); });
        return reached.size === N ? true : undefined;
      }, 120_000);
      console.log(`removal: submit → epoch 1 on all five in ${Date.now() - submitted} ms (${[...reached].sort((a, b) => a[0] - b[0]).map(([i, ms]) => `m${i} ${ms}`).join(', ')})`);
      // m2's consensus starts again in place as an observer of the new set (it votes no more).
      await until('m2 follows the chain as an observer', async () => ((await status(2)).observer ? true : undefined), 60_000);
      // m2 committed epoch 0's last block too, as a validator.
      const end = await lastBlockOf(0, [0, 1, 3, 4]);
      const m2End = await call(clients[2]!.getBlock.bind(clients[2]!), { by: { $case: 'height', value: end.height } }, { deadlineMs: 5000 });
      assert.equal(toHex(m2End.blockHash), end.hash);
      for (const i of [0, 1, 3, 4]) {
        const v = await call(clients[i]!.getValidators.bind(clients[i]!), {}, { deadlineMs: 5000 });
        assert.equal(Number(v.epoch), 1);
        assert.deepEqual(v.validators.map((x) => x.name), ['m0', 'm1', 'm3', 'm4']);
        // No change has set the parameters: conf.yaml's (genesis's) are in force.
        assert.deepEqual([Number(v.baseTimeoutMs), Number(v.idleHeartbeatMs), v.paramsCommitted], [1000, 0, false]);
      }
      // Every remaining member's gateway holds epoch 1's set: m2 is no validator, m3 and m4 moved up.
      const peerOf = new Map((await genesis()).validators.map((v) => [v.name, v.peer_id]));
      for (const i of [0, 1, 3, 4]) {
        await until(`m${i}'s gateway numbers epoch 1's validators`, async () => {
          const peers = (await status(i)).peers;
          const index = (name: string) => peers.find((p) => p.peerId === peerOf.get(name))?.validatorIndex;
          return !peers.some((p) => p.peerId === peerOf.get('m2')) && (i === 3 || index('m3') === 2) && (i === 4 || index('m4') === 3) ? true : undefined;
        }, 30_000);
      }
      assert.match(await fs.readFile(path.join(m(2), 'logs', 'signer.log'), 'utf8'), /epoch advanced: this key is not in the new set and signs nothing more/);
      assert.match(await fs.readFile(path.join(m(2), 'logs', 'consensus.log'), 'utf8'), /epoch started without this member/);
      // Epoch 1 commits with its four members.
      await commitSome('epoch1', [0, 1, 3, 4]);
      // The removed m2 still takes a client's transaction (as an observer does) and hands it on to
      // the set's leaders: acknowledged, so it must be committed.
      const handedOn = new TextEncoder().encode(`after-removal-${randomBytes(4).toString('hex')}`);
      await call(clients[2]!.submitTransaction.bind(clients[2]!), { tx: handedOn });
      await until('the removed member\'s transaction committed by the set', async () => {
        const r = await call(clients[0]!.getTransaction.bind(clients[0]!), { txHash: txHash(handedOn), withProof: false });
        return r.status === TxStatus.TX_STATUS_COMMITTED ? true : undefined;
      }, 60_000);

      // A transaction m2 acknowledged as a validator just before the change, whose hand-off was lost:
      // in m2's mempool journal (ACCEPTED is durable), never seen by the set. Put there as m2's
      // consensus would have left it; m2's consensus killed (kill -9) and started again: the
      // removed member follows the chain and offers it to the set until it sees it committed.
      const stranded = new TextEncoder().encode(`stranded-${randomBytes(4).toString('hex')}`);
      const limits = { maxTxs: 1000, maxBytes: 1 << 20 };
      const journal = new MempoolJournal({ path: path.join(m(2), 'consensus', 'mempool'), log: pino({ level: 'silent' }), ...limits });
      await journal.replay(new Mempool({ ...limits, maxTxBytes: 1 << 16 }), () => false, Date.now());
      await journal.append(txHash(stranded), stranded);
      await journal.close();
      const pid = Number(await fs.readFile(path.join(m(2), 'run', 'consensus.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');

      // While its consensus is down, the removed m2 keeps voting with its old key: its gateway's
      // Attach stream, a validly signed vote of epoch 1 as validator 2, to every member. No gateway
      // numbers m2 among the validators any more: each member's consensus refuses it by its kind
      // before decoding it (not_validator), and counts it.
      const outsideRefusals = () => Promise.all([0, 1, 3, 4].map(async (i) => {
        const text = await (await fetch(`http://127.0.0.1:${memberPorts(basePort, i).consensusMetrics}/metrics`)).text();
        return text.split('\n').filter((l) => l.startsWith('btcfed_consensus_peer_offences_total{') && l.includes('peer="outside"') && l.includes('reason="not_validator"'))
          .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
      }));
      const before = await outsideRefusals();
      const gw = createClient(GatewayServiceClient, `127.0.0.1:${memberPorts(basePort, 2).gateway}`, { security: memberSecurityFromDir(m(2), 'consensus').client });
      const stream = await until('m2\'s gateway to take a new consumer', () => new Promise<ReturnType<typeof gw.attach> | undefined>((resolve) => {
        const st = gw.attach();
        st.on('data', (r: AttachResponse) => { if (r.body?.$case === 'ready') resolve(st); });
        st.on('error', () => resolve(undefined));
      }), 15_000);
      const signerDir = path.join(m(2), 'signer');
      const passphrase = (await fs.readFile((await signerPassphrasePath(signerDir))!, 'utf8')).trim();
      const { secretKey } = await openKey(await fs.readFile(path.join(signerDir, 'signer.key'), 'utf8'), passphrase, 'signer.key');
      const dsa = createSlhDsa();
      const counted = await until('every member to refuse the removed member\'s votes', async () => {
        const view = Number((await status(0)).view);
        const blockHash = randomBytes(32);
        const signature = await dsa.sign(secretKey, voteSigningBytes({ chainId, epoch: 1, phase: Phase.PREPARE, view, blockHash }));
        const frame = encodeFrame(chainId, { type: 'consensus', message: { type: 'vote', epoch: 1, phase: Phase.PREPARE, view, blockHash, sender: 2, signature } });
        for (const to of [0, 1, 2, 3]) stream.write({ body: { $case: 'send', value: { to, toPeer: '', frame } } });
        await new Promise((r) => setTimeout(r, 300));
        const now = await outsideRefusals();
        return now.every((x, k) => x > before[k]!) ? now : undefined;
      }, 30_000);
      console.log(`removed m2 voting with its old key: refused as not_validator by m0, m1, m3, m4: ${counted.map((x, k) => x - before[k]!).join('/')}`);
      stream.cancel();
      gw.close();
      await net!.restart(2, 'consensus');
      await until('the stranded transaction committed by the set', async () => {
        const r = await call(clients[0]!.getTransaction.bind(clients[0]!), { txHash: txHash(stranded), withProof: false });
        return r.status === TxStatus.TX_STATUS_COMMITTED ? true : undefined;
      }, 90_000);
      assert.match(await fs.readFile(path.join(m(2), 'logs', 'consensus.log'), 'utf8'), /offering the transactions this member acknowledged and has not seen committed to the validators again/);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  test('m3\'s key rotated in epoch 1: epoch 1 ends everywhere at one height, the old key signs nothing more, the new one signs epoch 2', async () => {
    try {
      // m3's operator: a signer with the new key beside the running one, standing by, and m3's new card.
      const oldDir = path.join(m(3), 'signer');
      const newDir = path.join(m(3), 'signer-new');
      const oldConf = parse(await fs.readFile(path.join(oldDir, 'signer.yaml'), 'utf8')) as Record<string, unknown> & { listen: string; tls: Record<string, string>; passphrase_file: string };
      await fs.mkdir(path.join(newDir, 'tls'), { recursive: true, mode: 0o700 });
      for (const f of [oldConf.passphrase_file, oldConf.tls.ca_file!, oldConf.tls.cert_file!, oldConf.tls.key_file!]) await fs.copyFile(path.join(oldDir, f), path.join(newDir, f));
      await fs.writeFile(path.join(newDir, 'signer.yaml'), stringify({ ...oldConf, standby: true }));
      const keygen = signerCli(['keygen', '--data-dir', newDir]);
      assert.equal(keygen.status, 0, keygen.stderr);
      const newKey = keygen.stdout.trim();
      // And a new libp2p identity: m3 moves to another peer id in the same change.
      assert.match(await ok(['member', 'rotate', '--dir', m(3), '--libp2p', '--public-key', newKey]), /prepared a rotation of m3/);
      const newCard = path.join(m(3), 'member-card.next.yaml');
      const newPeer = (parse(await fs.readFile(newCard, 'utf8')) as { libp2p: { peer_id: string } }).libp2p.peer_id;
      const oldPeer = (await genesis()).validators.find((v) => v.name === 'm3')!.peer_id;

      // Proposed and approved against epoch 1's set (quorum 3 of 4; m4 approves as validator 3).
      const said = await ok(['reconfigure', 'propose', '--member', m(0), '--rotate', `m3=${newCard}`, '--out', m('rotate.yaml')]);
      assert.match(said, /ends epoch 1 of chain/);
      const tx = await approveAndAssemble(m('rotate.yaml'), [0, 1, 4], m('rotate.tx'));
      // Applying before the change committed: m3's consensus says who holds its seat, and nothing changes.
      await refused(['member', 'rotate', '--dir', m(3), '--apply'], /epoch 1 \(this member's consensus\) seats m3 as peer \S+, key .*not as its new card/);
      assert.match(await ok(['reconfigure', 'submit', '--member', m(4), '--tx', tx]), /it ends epoch 1/);

      await until('epoch 2 on m0, m1, m3 and m4', epochOn([0, 1, 3, 4], 2), 120_000);
      for (const i of [0, 1, 3, 4]) {
        const v = await call(clients[i]!.getValidators.bind(clients[i]!), {}, { deadlineMs: 5000 });
        assert.equal(Number(v.epoch), 2);
        assert.equal(toHex(v.validators[2]!.publicKey), newKey, 'epoch 2 seats m3\'s new key at m3\'s index');
      }
      // m3's gateway still runs on its old peer id, which epoch 2 no longer numbers: the others send
      // it nothing until its operator applies the new key (below), so m3 is checked after that.
      await lastBlockOf(1, [0, 1, 4]);
      await until('m3\'s gateway says its member is seated under another peer id', async () =>
        (/this member is seated under another peer id/.test(await fs.readFile(path.join(m(3), 'logs', 'gateway.log'), 'utf8')) ? true : undefined), 30_000);

      // Epoch 2 commits without m3 (its old key signs nothing more): three of four are its quorum.
      await commitSome('epoch2', [0, 1, 4]);
      assert.match(await fs.readFile(path.join(m(3), 'logs', 'signer.log'), 'utf8'), /epoch advanced: this key is not in the new set and signs nothing more/);

      // m3's operator: the new signer where the old one listened, and m3's consensus restarted.
      const old = net!.procs.find((p) => p.member === 'm3' && p.service === 'signer')!;
      old.child.kill('SIGTERM');
      await new Promise((r) => old.child.once('exit', r));
      newSigner = startService('services/signer/main.ts', ['run', '--data-dir', newDir, '--listen', oldConf.listen, '--init', '--no-nats']);
      await newSigner.waitFor((l) => l.msg === 'signer ready', 20_000);
      // ... its new libp2p key put into force (epoch 2 seats it), the store and gateway restarted on it.
      assert.match(await ok(['member', 'rotate', '--dir', m(3), '--apply']), /applied: epoch 2 seats this member as peer \S+\n.*restart the store, then the gateway/);
      await net!.restart(3, 'store');
      await net!.restart(3, 'gateway');
      await net!.restart(3, 'consensus');
      const slh = createSlhDsa({ paramSet: 'slh-dsa-sha2-128f' });
      const byNewKey = await until('a commit QC of epoch 2 signed by m3\'s new key', async () => {
        const top = Number((await status(0)).committedHeight);
        const b = await call(clients[0]!.getBlock.bind(clients[0]!), { by: { $case: 'height', value: top } }, { deadlineMs: 5000 });
        const qc = b.qc!;
        if (Number(b.block!.header!.epoch) !== 2) return undefined;
        const k = bitmapToSigners('qc', qc.signers).indexOf(2);
        if (k < 0) return undefined;
        return { qc, sig: qc.signatures[k]! };
      }, 120_000);
      const bytes = voteSigningBytes({ chainId, epoch: 2, phase: byNewKey.qc.phase as number as Phase, view: Number(byNewKey.qc.view), blockHash: byNewKey.qc.blockHash });
      assert.equal(slh.verifySync(fromHex(newKey), bytes, byNewKey.sig), true, 'm3 signs with its new key');
      const oldKey = (await genesis()).validators.find((v) => v.name === 'm3')!.public_key;
      assert.equal(slh.verifySync(fromHex(oldKey), bytes, byNewKey.sig), false);
      assert.match(await fs.readFile(path.join(m(3), 'logs', 'consensus.log'), 'utf8'), /the signer was behind this member's epochs/);
      await lastBlockOf(1, [0, 1, 3, 4]);
      // Every gateway numbers m3's new peer id as validator 2; its old one is no validator anywhere.
      for (const i of [0, 1, 4]) {
        await until(`m${i}'s gateway connected to m3 at its new peer id, as validator 2`, async () => {
          const peers = (await status(i)).peers;
          const now = peers.find((p) => p.peerId === newPeer);
          return now?.state === 'connected' && now.validatorIndex === 2 && !peers.some((p) => p.peerId === oldPeer) ? true : undefined;
        }, 30_000);
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  test('m5 added in epoch 2: it follows the chain across both epoch ends, starts again as a validator when seated, and signs epoch 3', async () => {
    try {
      const dir5 = m('m5');
      await ok(['member', 'join', '--genesis', path.join(m(0), 'genesis.yaml'), '--dir', dir5, '--added']);
      const { consensus: consensus5 } = await startAddedMember(dir5, NATS_URL, m5Procs);
      clients[5] = consensusClient(dir5);
      // Following, before the change: it proves both epoch ends it meets and is in epoch 2 with the others.
      await until('m5 follows into epoch 2', async () => (Number((await status(5)).epoch) === 2 ? true : undefined), 60_000);
      assert.equal(consensus5.lines.filter((l) => l.msg === 'epoch ended: following the next epoch\'s set').length, 2);

      // With m5's addition, the federation's parameters change from epoch 3 (conf.yaml: 1s and 0, a block every view).
      await refused(['reconfigure', 'propose', '--member', m(0), '--base-timeout', '1500ms', '--out', m('params.yaml')], /states both: give --base-timeout and --idle-heartbeat/);
      await refused(['reconfigure', 'propose', '--member', m(0), '--base-timeout', '10ms', '--idle-heartbeat', '3s', '--out', m('params.yaml')], /ops\[0\]\.baseTimeoutMs: 10: must be 100ms to 60s/);
      const said = await ok(['reconfigure', 'propose', '--member', m(0), '--add', path.join(dir5, 'member-card.yaml'), '--base-timeout', '1500ms', '--idle-heartbeat', '3s', '--out', m('add.yaml')]);
      assert.match(said, /ends epoch 2 of chain .*; 2 operation\(s\); 5 validators after it/s);
      const tx = await approveAndAssemble(m('add.yaml'), [0, 1, 4], m('add.tx'));
      const submitted = Date.now();
      assert.match(await ok(['reconfigure', 'submit', '--member', m(0), '--tx', tx]), /it ends epoch 2/);
      await until('epoch 3 on m0, m1, m3 and m4', epochOn([0, 1, 3, 4], 3), 120_000);
      await consensus5.waitFor((l) => l.msg === 'seated by the chain: starting again as a validator', 60_000);
      const ready5 = await consensus5.waitFor((l) => l.msg === 'consensus ready' && l.observer === undefined, 60_000);
      // Seated in epoch 3, m5 runs the committed parameters, derived from the proofs (its conf.yaml says 1s and 0).
      assert.deepEqual([ready5.baseTimeoutMs, ready5.idleHeartbeatMs], [1500, 3000]);
      const byM5 = await until('a commit QC of epoch 3 signed by m5', async () => {
        const top = Number((await status(0)).committedHeight);
        const b = await call(clients[0]!.getBlock.bind(clients[0]!), { by: { $case: 'height', value: top } }, { deadlineMs: 5000 });
        if (Number(b.block!.header!.epoch) !== 3) return undefined;
        return bitmapToSigners('qc', b.qc!.signers).includes(4) ? b : undefined;
      }, 120_000);
      console.log(`addition: submit → m5 signing epoch 3's QCs in ${Date.now() - submitted} ms`);
      // m0's peers.yaml never listed m5: its gateway was told m5's card addresses with epoch 3's set.
      const card5 = parse(await fs.readFile(path.join(dir5, 'member-card.yaml'), 'utf8')) as { libp2p: { addresses: string[] } };
      const dialled = await until('m0\'s gateway told where m5 is dialled', async () => (await fs.readFile(path.join(m(0), 'logs', 'gateway.log'), 'utf8'))
        .split('\n').filter((l) => l.includes('validators dialled at the addresses their change carried')).map((l) => JSON.parse(l) as { members: string[]; epoch: number })
        .find((l) => l.epoch === 3), 30_000);
      assert.deepEqual(dialled.members, ['m5']);
      assert.ok(card5.libp2p.addresses.length > 0);
      assert.ok(byM5);
      const v = await call(clients[5]!.getValidators.bind(clients[5]!), {}, { deadlineMs: 5000 });
      assert.deepEqual([Number(v.epoch), v.validators.map((x) => x.name)], [3, ['m0', 'm1', 'm3', 'm4', 'm5']]);
      assert.deepEqual([Number(v.baseTimeoutMs), Number(v.idleHeartbeatMs), v.paramsCommitted], [1500, 3000, true], 'GetValidators reports the committed parameters');
      // On m0, m5 was absent from epoch 3's start until it took part (services/gateway/presence.ts:
      // a validator the set gains is absent until heard taking part), so its views cost no timer
      // while it was still an observer; then present.
      // Seated, m5's engine says it is catching up from its start until a commit reaches it
      // (services/consensus/catching-up.ts), which may come a moment after its signature is in a QC:
      // so m0 is told m5 present once that word ends, not necessarily yet. Never present in between.
      const peer5 = v.validators.find((x) => x.name === 'm5')!.peerId;
      const toldM0 = async () => (await fs.readFile(path.join(m(0), 'logs', 'consensus.log'), 'utf8')).split('\n')
        .filter((l) => l.includes(peer5) && l.includes('(gateway)')).map((l) => (JSON.parse(l) as { present: boolean }).present);
      const told0 = await until('m0 told m5 present', async () => { const t = await toldM0(); return t.at(-1) === true ? t : undefined; }, 30_000);
      assert.deepEqual(told0, [false, true], `m0's consensus was told m5 absent, then present once (told: ${JSON.stringify(told0)})`);
      await lastBlockOf(2, [0, 1, 3, 4, 5]);
      await commitSome('epoch3', [0, 1, 4, 5]);

      // The history, each end checked from genesis; and a block of epoch 3 verified from genesis's
      // set alone, by walking the three epoch changes (the member is trusted for nothing).
      const hist = await ok(['reconfigure', 'history', '--member', m(1)]);
      assert.match(hist, /epoch 0 ended at height \d+ .*: remove m2; approved by 4 of 5 \(m0, m1, m3, m4\)/);
      assert.match(hist, /epoch 1 ended at height \d+ .*: rotate m3; approved by 3 of 4 \(m0, m1, m4\)/);
      assert.match(hist, /epoch 2 ended at height \d+ .*: add m5; params: base_timeout 1500ms, idle_heartbeat 3s; approved by 3 of 4/);
      // Every member that was there started epoch 3 on the committed parameters.
      for (const i of [0, 1, 3, 4]) {
        const started = (await fs.readFile(path.join(m(i), 'logs', 'consensus.log'), 'utf8')).split('\n').filter((l) => l.includes('"epoch started"'))
          .map((l) => JSON.parse(l) as { epoch: number; baseTimeoutMs: number; idleHeartbeatMs: number; params: string }).find((l) => l.epoch === 3);
        assert.deepEqual(started && [started.baseTimeoutMs, started.idleHeartbeatMs, started.params], [1500, 3000, 'committed'], `m${i}'s epoch 3`);
      }
      assert.match(hist, /epoch 3: 5 validators: m0, m1, m3, m4, m5\nthe member is in epoch 3/);
      const top = Number((await status(5)).committedHeight);
      assert.match(await ok(['verify', '--member', dir5, '--height', String(top), '--trust', path.join(m(0), 'conf.yaml')]),
        new RegExp(`verified: block ${top} is committed .* of epoch 3 \\(its set reached from genesis's by checking 3 epoch changes\\)`));
      // A light client that keeps what it walked: the first call checks the three changes and keeps
      // them; the next starts from them and fetches no proof of an epoch it holds.
      const kept = path.join(dir5, 'trusted-epochs.json');
      assert.match(await ok(['verify', '--member', dir5, '--height', String(top), '--trust', path.join(m(0), 'conf.yaml'), '--trusted-epochs', kept]),
        /of epoch 3 \(its set reached from genesis's by checking 3 epoch changes\)/);
      assert.equal((JSON.parse(await fs.readFile(kept, 'utf8')) as { ended: unknown[] }).ended.length, 3, 'the three ends walked are kept');
      assert.match(await ok(['verify', '--member', dir5, '--height', String(top), '--trust', path.join(m(0), 'conf.yaml'), '--trusted-epochs', kept]),
        /of epoch 3 \(its set reached from genesis's by the 3 epoch changes kept in the trusted-epochs file\)/);
      // A kept file of another chain, or edited, is refused rather than trusted.
      const other = path.join(dir5, 'other-epochs.json');
      await fs.writeFile(other, (await fs.readFile(kept, 'utf8')).replace(/"chain_id": "[^"]*"/, '"chain_id": "another-chain"'));
      await refused(['verify', '--member', dir5, '--height', String(top), '--trusted-epochs', other], /trusted epochs .* cannot be used: it is of chain "another-chain"/);
      await fs.writeFile(other, (await fs.readFile(kept, 'utf8')).replace(/"height": (\d+)/, (_, h: string) => `"height": ${Number(h) + 1}`));
      await refused(['verify', '--member', dir5, '--height', String(top), '--trusted-epochs', other], /cannot be used: checksum mismatch/);
      const end0 = await lastBlockOf(0, [5]);
      assert.match(await ok(['verify', '--member', dir5, '--height', String(end0.height)]), new RegExp(`verified: block ${end0.height} is committed`), 'an epoch\'s last block, by the proof its epoch ended with');
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
