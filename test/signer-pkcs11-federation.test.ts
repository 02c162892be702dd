// A federation whose every signer keeps its key on a SoftHSM2 token (custody pkcs11, sealed):
// `btcfed init` makes four members with file keys, each member's key is moved into its own token
// with the signer's import-key ceremony (the key file destroyed), and the 16 real processes commit
// blocks and a transaction. One token directory for this test (its own softhsm2.conf, never the
// system's), one token per member.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { txHash } from '#libs/crypto/index.ts';
import { call } from '#libs/rpc/index.ts';
import { TxStatus, type ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { initFederation } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { makeSoftHsm, SOFTHSM_MODULE } from '../services/signer/softhsm-testkit.ts';
import { NATS_URL } from './support/store.ts';
import { signerCli } from './support/signer.ts';
import { until } from './support/until.ts';
import { freePortBlock } from './support/ports.ts';

const N = 4;
const basePort = await freePortBlock(20_000, 120);
let dir: string;
let net: Devnet | undefined;
const clients: ConsensusServiceClient[] = [];

describe('a federation with every signer on a SoftHSM2 token (sealed)', { timeout: 180_000 }, () => {
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-pkcs11-e2e-'));
    await initFederation({ members: N, out: path.join(dir, 'fed'), basePort, chainId: `p11-${randomBytes(3).toString('hex')}`, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    const hsm = await makeSoftHsm(path.join(dir, 'hsm'));
    // Every signer process the devnet starts inherits this: its own token directory.
    process.env.SOFTHSM2_CONF = hsm.confFile;
    for (let i = 0; i < N; i++) {
      const signerDir = path.join(dir, 'fed', `m${i}`, 'signer');
      hsm.addToken(`tok-m${i}`);
      await hsm.writePin(path.join(signerDir, 'token-pin'));
      const confFile = path.join(signerDir, 'signer.yaml');
      const conf = parse(await fs.readFile(confFile, 'utf8')) as Record<string, unknown>;
      conf.custody = { backend: 'pkcs11', module: SOFTHSM_MODULE, token_label: `tok-m${i}`, pin_file: 'token-pin', key_label: `m${i}-seal` };
      await fs.writeFile(confFile, stringify(conf));
      const r = signerCli(['import-key', '--data-dir', signerDir], hsm.env);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^imported: /);
      await assert.rejects(fs.access(path.join(signerDir, String(conf.key_file ?? 'signer.key'))), 'the file key is gone');
    }
    net = await runDevnet({ dir: path.join(dir, 'fed'), members: N, basePort, natsUrl: NATS_URL, quiet: true });
    for (let i = 0; i < N; i++) clients.push(consensusClient(path.join(dir, 'fed', `m${i}`)));
  });
  after(async () => {
    for (const c of clients) c.close();
    await net?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('every signer unsealed its key from its token, and the federation commits blocks and a transaction', async () => {
    for (let i = 0; i < N; i++) {
      const log = await fs.readFile(path.join(dir, 'fed', `m${i}`, 'logs', 'signer.log'), 'utf8');
      assert.match(log, new RegExp(`"custody":"pkcs11 sealed: [^"]*under key \\\\"m${i}-seal\\\\" of token \\\\"tok-m${i}\\\\"`), `m${i}'s signer runs from its token`);
      assert.match(log, /"stateAuthenticatedBy":"m\d-seal\/state"/);
    }
    const tx = new TextEncoder().encode(`pkcs11-e2e-${randomBytes(4).toString('hex')}`);
    await call(clients[0]!.submitTransaction.bind(clients[0]!), { tx });
    await until('the transaction committed on every member, and every member past height 3', async () => {
      for (const c of clients) {
        const r = await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false });
        if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
        if (Number((await call(c.getStatus.bind(c), {}, { deadlineMs: 5000 })).committedHeight) < 3) return undefined;
      }
      return true;
    }, 60_000);
  });
});
