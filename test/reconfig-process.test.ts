// A change of the validator set through consensus, on real processes (docs/reconfiguration.md):
// a 4-member federation (store, signer, gateway and consensus per member; libp2p, mTLS gRPC, NATS);
// operators propose adding a fifth member from its card, approve it on three of their own signers
// with their operator certificates, assemble the transaction and submit it to one member with the
// CLI. The block carrying it ends epoch 0 on every member at one height; every member shows its
// signer the proof and runs epoch 1 with five validators (the fifth stays away, so the four are
// exactly its quorum) and goes on committing transactions. Refused on the way: a change a member
// does not hold valid. A member's consensus restarted in epoch 1 comes back in epoch 1, from its
// store alone, and its signer agrees.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { txHash } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { ConsensusServiceClient, TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { NATS_URL } from './support/store.ts';
import { until } from './support/until.ts';
import { btcfedIn } from './support/cli.ts';

const N = 4;
const basePort = 20_000 + 100 * Math.floor(Math.random() * 120);
const chainId = `rp-${randomBytes(3).toString('hex')}`;
let dir: string;
let net: Devnet | undefined;
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
    // The member to add: its own dir and card, made on its operator's host.
    await ok(['member', 'init', '--name', 'm4', '--out', m('m4'), '--host', '127.0.0.1', '--base-port', String(basePort + 60)]);
    net = await runDevnet({ dir, members: N, basePort, natsUrl: NATS_URL, quiet: true });
    for (let i = 0; i < N; i++) clients.push(consensusClient(m(i)));
  });
  after(async () => {
    for (const c of clients) c.close();
    await net?.stop();
    if (failed) await reportLogs();
    if (failed || process.env.KEEP_E2E) console.log(`kept ${dir}`); else await fs.rm(dir, { recursive: true, force: true });
  });

  test('propose, approve on three signers, assemble, submit: epoch 0 ends everywhere at one height and epoch 1 runs with five validators', async () => {
    try {
      await until('a first commit everywhere', async () => ((await Promise.all([0, 1, 2, 3].map(status))).every((s) => Number(s.committedHeight) > 0) ? true : undefined));
      await ok(['reconfigure', 'propose', '--member', m(0), '--add', path.join(m('m4'), 'member-card.yaml'), '--out', m('change.yaml')]);
      const approvals: string[] = [];
      for (const i of [0, 1, 2]) {
        const signerConf = parse(await fs.readFile(path.join(m(i), 'signer', 'signer.yaml'), 'utf8')) as { listen: string; tls: { ca_file: string } };
        await ok(['reconfigure', 'approve', '--member', m(i), '--change', m('change.yaml'), '--signer', signerConf.listen,
          '--ca', path.join(m(i), 'signer', signerConf.tls.ca_file), '--cert', path.join(m(i), 'tls', 'operator.pem'), '--key', path.join(m(i), 'tls', 'operator-key.pem'),
          '--out', m(`approval-m${i}.yaml`)]);
        approvals.push(m(`approval-m${i}.yaml`));
      }
      await ok(['reconfigure', 'assemble', '--member', m(0), '--change', m('change.yaml'), '--approval', approvals.join(','), '--out', m('reconfig.tx')]);
      // A transaction that is not valid against the member's epoch is refused by it, naming why.
      await ok(['reconfigure', 'assemble', '--member', m(0), '--change', m('change.yaml'), '--approval', approvals.join(','), '--out', m('copy.tx')]);
      const bytes = await fs.readFile(m('copy.tx'));
      bytes[bytes.length - 1]! ^= 1; // the last approval's signature
      await fs.writeFile(m('forged.tx'), bytes);
      await refused(['reconfigure', 'submit', '--member', m(1), '--tx', m('forged.tx')], /approval|signature/);
      const said = await ok(['reconfigure', 'submit', '--member', m(1), '--tx', m('reconfig.tx')]);
      assert.match(said, /change [0-9a-f]{64} submitted: it ends epoch 0/);

      await until('epoch 1 on every member', async () => ((await Promise.all([0, 1, 2, 3].map(status))).every((s) => Number(s.epoch) === 1) ? true : undefined), 120_000);
      for (const c of clients) {
        const v = await call(c.getValidators.bind(c), {}, { deadlineMs: 5000 });
        assert.equal(Number(v.epoch), 1);
        assert.deepEqual(v.validators.map((x) => x.name), ['m0', 'm1', 'm2', 'm3', 'm4']);
        assert.equal(v.quorum, 4);
      }
      // Epoch 0's last block is one block, at one height, on every member: the block carrying the change.
      const ends = await Promise.all(clients.map(async (c) => {
        const at = (h: number) => call(c.getBlock.bind(c), { by: { $case: 'height', value: h } }, { deadlineMs: 5000 });
        for (let h = 1; ; h++) {
          if (Number((await at(h)).block!.header!.epoch) === 1) return { height: h - 1, hash: Buffer.from((await at(h - 1)).blockHash).toString('hex') };
        }
      }));
      for (const e of ends) assert.deepEqual(e, ends[0]);

      // Epoch 1 commits: all four members sign every QC now (quorum 4 of 5, m4 away).
      const txs = Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(`epoch1-${i}-${randomBytes(4).toString('hex')}`));
      await Promise.all(txs.map((tx, i) => call(clients[i % N]!.submitTransaction.bind(clients[i % N]!), { tx })));
      await until('every epoch-1 transaction committed', async () => {
        for (const tx of txs) {
          const r = await call(clients[0]!.getTransaction.bind(clients[0]!), { txHash: txHash(tx), withProof: false });
          if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
        }
        return true;
      }, 120_000);

      // A consensus restarted in epoch 1 comes back in it (its store holds the proof), and so does its signer.
      const before = Number((await status(2)).committedHeight);
      await net!.restart(2, 'consensus');
      await until('m2 commits again after its restart', async () => {
        const s = await status(2);
        return Number(s.epoch) === 1 && Number(s.committedHeight) > before + 1 ? true : undefined;
      }, 120_000);
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
