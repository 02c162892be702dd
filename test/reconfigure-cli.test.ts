// The operators' ceremony for a change of the validator set, through the command line on real
// member dirs and real signer processes (docs/reconfiguration.md): four members made with
// `btcfed member init` and joined to a genesis, a fifth member's card; `btcfed reconfigure propose
// --add` checks the change against the set; each of three operators approves it on its own signer
// with an operator certificate from its member's CA (`btcfed cert issue`, listed in signer.yaml
// operator_clients); `assemble` verifies every approval and writes the transaction, which decodes
// to the change and is authorised by a quorum of the set's keys. Refused along the way, naming
// what is wrong: a change below four members, an edited change file, too few approvals, an
// approval of another change.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { X509Certificate, randomBytes } from 'node:crypto';
import { createSlhDsa } from '#libs/crypto/index.ts';
import { parseConfText } from '#libs/config/index.ts';
import { ValidatorSet, authorizeChange, decodeReconfigTx } from '#libs/validators/index.ts';
import { startSignerProcess } from './support/signer.ts';
import { btcfedIn } from './support/cli.ts';
import type { ServiceProcess } from './support/process.ts';
import { freePortBlock } from './support/ports.ts';

const basePort = await freePortBlock(20_000, 120);
let out: string;
const signers: ServiceProcess[] = [];

const { ok, refused } = btcfedIn(() => out);
const dir = (name: string) => path.join(out, name);

describe('btcfed reconfigure: propose, approve on three signers, assemble', { timeout: 180_000 }, () => {
  before(async () => {
    out = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-reconf-'));
    const chain = `rc-${randomBytes(3).toString('hex')}`;
    for (let i = 0; i < 5; i++) await ok(['member', 'init', '--name', `m${i}`, '--out', dir(`m${i}`), '--host', '127.0.0.1', '--base-port', String(basePort + 10 * i), '--passphrase-file', '../secrets/signer-passphrase']);
    await ok(['genesis', '--chain-id', chain, ...[0, 1, 2, 3].flatMap((i) => ['--card', path.join(dir(`m${i}`), 'member-card.yaml')]), '--out', dir('genesis.yaml')]);
    for (let i = 0; i < 4; i++) await ok(['member', 'join', '--genesis', dir('genesis.yaml'), '--dir', dir(`m${i}`)]);
  });
  after(async () => {
    for (const s of signers) await s.stop();
    await fs.rm(out, { recursive: true, force: true });
  });

  test('propose checks the change against the set; an edited change file is refused', async () => {
    // No consensus runs here: the refusal says it was checked against genesis, and why.
    await refused(['reconfigure', 'propose', '--member', dir('m0'), '--remove', 'm3', '--out', dir('bad.yaml')],
      /ops: the change leaves 3 validators, at least 4 required \(checked against genesis's set in conf\.yaml \(epoch 0\): member m0 could not be asked for its current epoch \(/);
    await refused(['reconfigure', 'propose', '--member', dir('m0'), '--add', path.join(dir('m1'), 'member-card.yaml')], /ops\[0\]\.name: m1 is already validator 1/);
    const said = await ok(['reconfigure', 'propose', '--member', dir('m0'), '--add', path.join(dir('m4'), 'member-card.yaml'), '--out', dir('change.yaml')]);
    assert.match(said, /change [0-9a-f]{64}\n {2}ends epoch 0 of chain rc-.*; 1 operation\(s\); 5 validators after it/);
    const edited = parse(await fs.readFile(dir('change.yaml'), 'utf8')) as { ops: Array<{ name: string; addresses?: string[] }> };
    const card = parse(await fs.readFile(path.join(dir('m4'), 'member-card.yaml'), 'utf8')) as { libp2p: { addresses: string[] } };
    assert.deepEqual(edited.ops[0]!.addresses, card.libp2p.addresses, 'the card\'s addresses travel with the change');
    await fs.writeFile(dir('moved.yaml'), stringify({ ...edited, ops: [{ ...edited.ops[0]!, addresses: ['/ip4/203.0.113.9/tcp/4001'] }] }));
    await refused(['reconfigure', 'inspect', dir('moved.yaml')], /edited after it was proposed/);
    edited.ops[0]!.name = 'mallory';
    await fs.writeFile(dir('edited.yaml'), stringify(edited));
    await refused(['reconfigure', 'inspect', dir('edited.yaml')], /edited after it was proposed/);
    assert.match(await ok(['reconfigure', 'inspect', dir('change.yaml')]), new RegExp(`add m4 \\(peer .*, at ${card.libp2p.addresses[0]!.replace(/[/.]/g, '\\$&')}`));
  });

  test('a parameter change: both values or none, within their bounds; its file round-trips, and an edited value is an edited change', async () => {
    await refused(['reconfigure', 'propose', '--member', dir('m0'), '--idle-heartbeat', '5s', '--out', dir('p.yaml')], /states both/);
    await refused(['reconfigure', 'propose', '--member', dir('m0'), '--base-timeout', '2s', '--idle-heartbeat', '500ms', '--out', dir('p.yaml')], /ops\[0\]\.idleHeartbeatMs: 500: must be 0 \(a block every view\) or 1s to 30s/);
    await refused(['reconfigure', 'propose', '--member', dir('m0'), '--base-timeout', 'soon', '--idle-heartbeat', '0', '--out', dir('p.yaml')], /--base-timeout soon: "soon" is not a duration/);
    assert.match(await ok(['reconfigure', 'propose', '--member', dir('m0'), '--base-timeout', '2.5s', '--idle-heartbeat', '0', '--out', dir('params.yaml')]), /1 operation\(s\); 4 validators after it/);
    const y = parse(await fs.readFile(dir('params.yaml'), 'utf8')) as { ops: Array<Record<string, unknown>> };
    assert.deepEqual(y.ops, [{ kind: 'params', base_timeout_ms: 2500, idle_heartbeat_ms: 0 }]);
    assert.match(await ok(['reconfigure', 'inspect', dir('params.yaml')]), /ends epoch 0\n {2}params: base_timeout 2500ms, idle_heartbeat 0s/);
    await fs.writeFile(dir('params-edited.yaml'), stringify({ ...y, ops: [{ ...y.ops[0], base_timeout_ms: 100 }] }));
    await refused(['reconfigure', 'inspect', dir('params-edited.yaml')], /edited after it was proposed/);
  });

  test('each operator approves on its own signer with an operator certificate; assemble verifies a quorum and writes the transaction', async () => {
    const approvals: string[] = [];
    for (const i of [0, 1, 2]) {
      const m = dir(`m${i}`);
      await ok(['cert', 'issue', '--client', 'operator', '--member-name', `m${i}`, '--ca-dir', path.join(m, 'ca'), '--out', dir(`ops-m${i}`)]);
      const files = await fs.readdir(dir(`ops-m${i}`));
      const cert = path.join(dir(`ops-m${i}`), files.find((f) => f.endsWith('operator.pem'))!);
      const key = path.join(dir(`ops-m${i}`), files.find((f) => f.endsWith('operator-key.pem'))!);
      const fingerprint = new X509Certificate(await fs.readFile(cert)).fingerprint256.replaceAll(':', '').toLowerCase();
      const signerYaml = path.join(m, 'signer', 'signer.yaml');
      const conf = parse(await fs.readFile(signerYaml, 'utf8')) as Record<string, unknown>;
      await fs.writeFile(signerYaml, stringify({ ...conf, operator_clients: [fingerprint] }));
      const { svc, port } = await startSignerProcess(path.join(m, 'signer'), ['--init', '--no-nats']);
      signers.push(svc);
      const ca = path.join(m, 'signer', (conf.tls as { ca_file: string }).ca_file);
      if (i === 0) {
        // The consensus service's certificate (the one signer.yaml allowed_clients lists) is no operator's.
        const consensusCert = path.join(m, 'tls', 'consensus.pem');
        const consensusFp = new X509Certificate(await fs.readFile(consensusCert)).fingerprint256.replaceAll(':', '').toLowerCase();
        assert.ok((conf.allowed_clients as string[]).includes(consensusFp), 'tls/consensus.pem is the consensus service\'s certificate for the signer');
        await refused(['reconfigure', 'approve', '--member', m, '--change', dir('change.yaml'), '--signer', `127.0.0.1:${port}`, '--ca', ca,
          '--cert', consensusCert, '--key', path.join(m, 'tls', 'consensus-key.pem'), '--out', dir('nope.yaml')], /is not allowed \(RPC_PEER_NOT_ALLOWED\)/);
      }
      const said = await ok(['reconfigure', 'approve', '--member', m, '--change', dir('change.yaml'), '--signer', `127.0.0.1:${port}`, '--ca', ca, '--cert', cert, '--key', key, '--out', dir(`approval-m${i}.yaml`)]);
      assert.match(said, new RegExp(`m${i} \\(validator ${i}\\) approved change [0-9a-f]{64}`));
      approvals.push(dir(`approval-m${i}.yaml`));
    }
    await refused(['reconfigure', 'assemble', '--member', dir('m0'), '--change', dir('change.yaml'), '--approval', approvals.slice(0, 2).join(','), '--out', dir('few.tx')],
      /2 approvals, a quorum of epoch 0 is 3/);
    // An approval of another change does not count for this one.
    const other = await ok(['reconfigure', 'propose', '--member', dir('m0'), '--remove', 'm3', '--add', path.join(dir('m4'), 'member-card.yaml'), '--out', dir('other.yaml')]);
    assert.match(other, /4 validators after it/);
    await refused(['reconfigure', 'assemble', '--member', dir('m0'), '--change', dir('other.yaml'), '--approval', approvals.join(','), '--out', dir('other.tx')], /approves change .*, not /);
    const said = await ok(['reconfigure', 'assemble', '--member', dir('m0'), '--change', dir('change.yaml'), '--approval', approvals.join(','), '--out', dir('reconfig.tx')]);
    assert.match(said, /3 approvals \(quorum 3\)/);
    // The transaction decodes to the change and is authorised by the genesis set's keys.
    const tx = decodeReconfigTx(new Uint8Array(await fs.readFile(dir('reconfig.tx'))));
    const conf = parseConfText(await fs.readFile(path.join(dir('m0'), 'conf.yaml'), 'utf8'), 'conf.yaml');
    const slh = createSlhDsa({ paramSet: conf.crypto.param_set });
    assert.doesNotThrow(() => authorizeChange(ValidatorSet.fromConfig(conf.validators), tx.change, tx.approvals, (pk, m, s) => slh.verifySync(pk, m, s)));
    assert.deepEqual(tx.approvals.map((a) => a.validator), [0, 1, 2]);
    assert.match(await ok(['reconfigure', 'inspect', dir('reconfig.tx')]), /approvals: 0, 1, 2 \(3\)/);
  });
});
