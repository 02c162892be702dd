// A change of the validator set through consensus, on real processes (docs/reconfiguration.md):
// a 4-member federation (store, signer, gateway and consensus per member; libp2p, mTLS gRPC, NATS)
// rotates m3's SLH-DSA key, the change the services carry today, as its operators would: m3's
// operator makes the new key in a signer of its own (standby: it signs nothing yet) and a card with
// it; the operators propose the rotation, approve it on three of their own signers with their
// operator certificates, assemble the transaction and submit it to one member with the CLI. The
// block carrying it ends epoch 0 on every member at one height; every member shows its signer the
// proof and runs epoch 1 — m3's old signer, whose key is rotated out, signs nothing more, and the
// other three are epoch 1's quorum. m3's operator then puts the new signer where the old one
// listened and restarts m3's consensus, which shows it the proof it missed: m3 signs epoch 1's
// QCs with its new key, which verify under it and not under the old one. Refused on the way: a
// change the services cannot carry yet (adding a member), and a transaction with a forged approval.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { createSlhDsa, fromHex, toHex, txHash, voteSigningBytes } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { bitmapToSigners } from '#libs/wire/index.ts';
import type { Phase } from '#libs/hotstuff/index.ts';
import { encodeReconfigTx } from '#libs/validators/index.ts';
import { ConsensusServiceClient, TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { until } from './support/until.ts';
import { btcfedIn } from './support/cli.ts';
import { startService, type ServiceProcess } from './support/process.ts';
import { signerCli } from './support/signer.ts';

const N = 4;
const basePort = 20_000 + 100 * Math.floor(Math.random() * 120);
const chainId = `rp-${randomBytes(3).toString('hex')}`;
let dir: string;
let net: Devnet | undefined;
let newSigner: ServiceProcess | undefined;
const clients: ConsensusServiceClient[] = [];
const { ok, refused } = btcfedIn(() => dir);
const m = (i: number | string) => path.join(dir, typeof i === 'number' ? `m${i}` : i);
const status = (i: number) => call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 });

async function reportLogs(): Promise<void> {
  for (let i = 0; i < N; i++) {
    for (const service of ['consensus', 'signer']) {
      const text = await fs.readFile(path.join(m(i), 'logs', `${service}.log`), 'utf8').catch(() => '');
      for (const l of text.split('\n').filter((x) => /"level":(40|50|60)/.test(x)).slice(-8)) console.log(`[m${i}/${service}] ${l.slice(0, 400)}`);
    }
  }
}

describe('a change of the validator set on real processes', { timeout: 600_000 }, () => {
  let failed = false;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-reconfig-'));
    const members = await initFederation({ members: N, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    // Each operator's certificate (tls/operator.pem, its admin certificate) may ask its signer for approvals.
    for (const [i, member] of members.entries()) {
      const file = path.join(m(i), 'signer', 'signer.yaml');
      const conf = parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
      await fs.writeFile(file, stringify({ ...conf, operator_clients: [member.operator] }));
    }
    // A member the services cannot add yet: its card, made on its operator's host.
    await ok(['member', 'init', '--name', 'm4', '--out', m('m4'), '--host', '127.0.0.1', '--base-port', String(basePort + 60)]);
    net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
    for (let i = 0; i < N; i++) clients.push(consensusClient(m(i)));
  });
  after(async () => {
    for (const c of clients) c.close();
    await newSigner?.stop();
    await net?.stop();
    if (failed) await reportLogs();
    if (failed || process.env.KEEP_E2E) console.log(`kept ${dir}`); else await fs.rm(dir, { recursive: true, force: true });
  });

  test('a key rotated through consensus: epoch 0 ends everywhere at one height, the old key signs nothing more, the new one signs epoch 1', async () => {
    try {
      await until('a first commit everywhere', async () => ((await Promise.all([0, 1, 2, 3].map(status))).every((s) => Number(s.committedHeight) > 0) ? true : undefined));
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
      const card = parse(await fs.readFile(path.join(m(3), 'member-card.yaml'), 'utf8')) as { slh_dsa: { public_key: string } };
      card.slh_dsa.public_key = newKey;
      await fs.writeFile(m('m3-new-card.yaml'), stringify(card));

      await ok(['reconfigure', 'propose', '--member', m(0), '--rotate', `m3=${m('m3-new-card.yaml')}`, '--out', m('change.yaml')]);
      const approvals: string[] = [];
      for (const i of [0, 1, 2]) {
        const signerConf = parse(await fs.readFile(path.join(m(i), 'signer', 'signer.yaml'), 'utf8')) as { listen: string; tls: { ca_file: string } };
        await ok(['reconfigure', 'approve', '--member', m(i), '--change', m('change.yaml'), '--signer', signerConf.listen,
          '--ca', path.join(m(i), 'signer', signerConf.tls.ca_file), '--cert', path.join(m(i), 'tls', 'operator.pem'), '--key', path.join(m(i), 'tls', 'operator-key.pem'),
          '--out', m(`approval-m${i}.yaml`)]);
        approvals.push(m(`approval-m${i}.yaml`));
      }
      await ok(['reconfigure', 'assemble', '--member', m(0), '--change', m('change.yaml'), '--approval', approvals.join(','), '--out', m('reconfig.tx')]);
      // Refused by the member, naming why: a change the services cannot carry yet, a forged approval.
      await ok(['reconfigure', 'propose', '--member', m(0), '--add', path.join(m('m4'), 'member-card.yaml'), '--out', m('add.yaml')]);
      const addYaml = parse(await fs.readFile(m('add.yaml'), 'utf8')) as { ops: Array<{ name: string; peer_id: string; public_key: string }> };
      const add = { chainId, epoch: 0, ops: [{ kind: 'add' as const, name: 'm4', peerId: addYaml.ops[0]!.peer_id, publicKey: fromHex(addYaml.ops[0]!.public_key) }] };
      await fs.writeFile(m('add.tx'), encodeReconfigTx({ change: add, approvals: [] }));
      await refused(['reconfigure', 'submit', '--member', m(1), '--tx', m('add.tx')], /ops\[0\]: adding m4 is not carried by the services yet/);
      const forged = await fs.readFile(m('reconfig.tx'));
      forged[forged.length - 1]! ^= 1; // the last approval's signature
      await fs.writeFile(m('forged.tx'), forged);
      await refused(['reconfigure', 'submit', '--member', m(1), '--tx', m('forged.tx')], /approval|signature/);
      const said = await ok(['reconfigure', 'submit', '--member', m(1), '--tx', m('reconfig.tx')]);
      assert.match(said, /change [0-9a-f]{64} submitted: it ends epoch 0/);

      await until('epoch 1 on every member', async () => ((await Promise.all([0, 1, 2, 3].map(status))).every((s) => Number(s.epoch) === 1) ? true : undefined), 120_000);
      for (const c of clients) {
        const v = await call(c.getValidators.bind(c), {}, { deadlineMs: 5000 });
        assert.equal(Number(v.epoch), 1);
        assert.equal(toHex(v.validators[3]!.publicKey), newKey, 'epoch 1 seats m3\'s new key');
      }
      // Epoch 0's last block is one block, at one height, on every member: the block carrying the change.
      const ends = await Promise.all(clients.map(async (c) => {
        const at = (h: number) => call(c.getBlock.bind(c), { by: { $case: 'height', value: h } }, { deadlineMs: 5000 });
        for (let h = 1; ; h++) {
          if (Number((await at(h)).block!.header!.epoch) === 1) return { height: h - 1, hash: toHex((await at(h - 1)).blockHash) };
        }
      }));
      for (const e of ends) assert.deepEqual(e, ends[0]);

      // Epoch 1 commits without m3 (its old key signs nothing more): three of four are its quorum.
      const txs = Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(`epoch1-${i}-${randomBytes(4).toString('hex')}`));
      await Promise.all(txs.map((tx, i) => call(clients[i % N]!.submitTransaction.bind(clients[i % N]!), { tx })));
      await until('every epoch-1 transaction committed', async () => {
        for (const tx of txs) {
          const r = await call(clients[0]!.getTransaction.bind(clients[0]!), { txHash: txHash(tx), withProof: false });
          if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
        }
        return true;
      }, 120_000);
      const oldLog = await fs.readFile(path.join(m(3), 'logs', 'signer.log'), 'utf8');
      assert.match(oldLog, /epoch advanced: this key is not in the new set and signs nothing more/);

      // m3's operator: the new signer where the old one listened, and m3's consensus restarted.
      const old = net!.procs.find((p) => p.member === 'm3' && p.service === 'signer')!;
      old.child.kill('SIGTERM');
      await new Promise((r) => old.child.once('exit', r));
      newSigner = startService('services/signer/main.ts', ['run', '--data-dir', newDir, '--listen', oldConf.listen, '--init', '--no-nats']);
      await newSigner.waitFor((l) => l.msg === 'signer ready', 20_000);
      await net!.restart(3, 'consensus');
      const slh = createSlhDsa({ paramSet: 'slh-dsa-sha2-128f' });
      const byNewKey = await until('a commit QC of epoch 1 signed by m3\'s new key', async () => {
        const top = Number((await status(0)).committedHeight);
        const b = await call(clients[0]!.getBlock.bind(clients[0]!), { by: { $case: 'height', value: top } }, { deadlineMs: 5000 });
        const qc = b.qc!;
        const signers = bitmapToSigners('qc', qc.signers);
        const k = signers.indexOf(3);
        if (k < 0) return undefined;
        return { qc, sig: qc.signatures[k]! };
      }, 120_000);
      const bytes = voteSigningBytes({ chainId, epoch: 1, phase: byNewKey.qc.phase as number as Phase, view: Number(byNewKey.qc.view), blockHash: byNewKey.qc.blockHash });
      assert.equal(slh.verifySync(fromHex(newKey), bytes, byNewKey.sig), true, 'm3 signs with its new key');
      const oldKey = parse(await fs.readFile(path.join(m(0), 'conf.yaml'), 'utf8')) as { validators: Array<{ public_key: string }> };
      assert.equal(slh.verifySync(fromHex(oldKey.validators[3]!.public_key), bytes, byNewKey.sig), false);
      assert.match(await fs.readFile(path.join(m(3), 'logs', 'consensus.log'), 'utf8'), /the signer was behind this member's epochs/);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
