// What an operator does to change the validator set, as the real-process reconfiguration test and
// `npm run reconfig` both do it: let its operator certificate approve at its signer, approve a
// change on a quorum of signers and assemble the transaction, start a member that is being added.
// Every step is the CLI or the services' own binaries, as on separate hosts.

import fs from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { certificateFingerprint } from '#libs/rpc/index.ts';
import { startService, type ServiceProcess } from './process.ts';

type Ok = (args: readonly string[]) => Promise<string>;

/** The member's operator certificate (tls/operator.pem) may ask its signer for approvals. */
export async function allowOperator(memberDir: string, fingerprint?: string): Promise<void> {
  const file = path.join(memberDir, 'signer', 'signer.yaml');
  const conf = parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  const fp = fingerprint ?? certificateFingerprint(await fs.readFile(path.join(memberDir, 'tls', 'operator.pem'), 'utf8'));
  await fs.writeFile(file, stringify({ ...conf, operator_clients: [fp] }));
}

/**
 * Each member dir in `approvers` approves `change` on its own signer with its operator
 * certificate; the member `assembler` assembles the approvals. Returns the transaction's file.
 * `signerDir` says where a member's signer dir is when it is not `<member dir>/signer` (moved to
 * the signer's host, as on the namespace test bed).
 */
export async function approveAndAssemble(ok: Ok, change: string, approvers: readonly string[], assembler: string, out: string,
  signerDir: (memberDir: string) => string = (dir) => path.join(dir, 'signer')): Promise<string> {
  // Each operator at its own signer, all at once (as operators would).
  const approvals = await Promise.all(approvers.map(async (dir) => {
    const signerConf = parse(await fs.readFile(path.join(signerDir(dir), 'signer.yaml'), 'utf8')) as { listen: string; tls: { ca_file: string } };
    const file = path.join(path.dirname(out), `approval-${path.basename(change, '.yaml')}-${path.basename(dir)}.yaml`);
    await ok(['reconfigure', 'approve', '--member', dir, '--change', change, '--signer', signerConf.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:'),
      '--ca', path.join(signerDir(dir), signerConf.tls.ca_file), '--cert', path.join(dir, 'tls', 'operator.pem'), '--key', path.join(dir, 'tls', 'operator-key.pem'),
      '--out', file]);
    return file;
  }));
  await ok(['reconfigure', 'assemble', '--member', assembler, '--change', change, '--approval', approvals.join(','), '--out', out]);
  return out;
}

/**
 * Starts the four services of a member joined with `btcfed member join --added` (its signer
 * standing by), each waited for; the consensus service follows the chain until a change seats it.
 * An observer (`member join --observer`) has no signer: its store, gateway and consensus.
 * `spawned` sees each process as soon as it exists (to move it out of a caller's CPU limit).
 */
export async function startAddedMember(dir: string, natsUrl: string, procs: ServiceProcess[],
  opts: { observer?: boolean; spawned?: (p: ServiceProcess) => Promise<void> } = {}): Promise<{ consensus: ServiceProcess }> {
  const conf = parse(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8')) as { services: { store: { listen: string } } };
  const store = conf.services.store.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  const run = async (script: string, args: string[], ready: string) => {
    const p = startService(script, args);
    procs.push(p);
    await opts.spawned?.(p);
    await p.waitFor((l) => l.msg === ready, 30_000);
    return p;
  };
  await run('services/store/main.ts', ['--data-dir', dir, '--nats', natsUrl], 'store ready');
  if (!opts.observer) await run('services/signer/main.ts', ['run', '--data-dir', path.join(dir, 'signer'), '--init', '--no-nats'], 'signer ready');
  await run('services/gateway/main.ts', ['--store', store, '--data-dir', dir, '--nats', natsUrl], 'gateway ready');
  const consensus = await run('services/consensus/main.ts', ['--store', store, '--data-dir', dir, '--nats', natsUrl], 'consensus ready');
  return { consensus };
}
