// `npm run chaos -- --seed S --minutes M`: the seeded fault campaign on the namespace test bed
// (test/testbed/campaign.ts). A 4-member federation, each member on a host of its own with its
// signer on another, a 3-node NATS cluster; a workload the whole time; faults from the seed's
// schedule; then the checker. Ends with one summary line:
//   chaos: seed=S faults=F acked=A lost=L duplicated=D disagreements=X recovered=R/F recovery_p50_s=… recovery_max_s=…
// and exits non-zero on any loss, duplicate, disagreement, unrecovered fault, service that exited
// on its own, or gap/duplicate in the stream. A failing run prints its seed and keeps its work
// dir (logs, campaign.json, transactions.jsonl). Needs root, iproute2 and iptables
// (bash scripts/ensure-tools.sh).

import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { FAULT_KINDS, runCampaign, schedule, describeFault, type FaultKind } from '../test/testbed/campaign.ts';
import { Federation } from '../test/testbed/federation.ts';
import { unavailableReason } from '../test/testbed/netns.ts';

const USAGE = `usage: npm run chaos -- [--seed S] [--minutes M] [--members 4] [--faults KIND,...] [--rate TX_PER_S] [--keep]
  --seed     the schedule's seed (default: random, printed)
  --minutes  how long faults are injected (default 3); set-up and the final check come on top
  --faults   only these kinds (default all): ${FAULT_KINDS.join(', ')}
  --rate     workload, transactions per second in all (default 200)
  --keep     keep the work dir also when the run passes`;

function fail(msg: string): never {
  console.error(`chaos: ${msg}\n${USAGE}`);
  process.exit(2);
}

const { values: f } = (() => {
  try {
    return parseArgs({ options: { seed: { type: 'string' }, minutes: { type: 'string' }, members: { type: 'string' }, faults: { type: 'string' },
      rate: { type: 'string' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  } catch (err) { return fail((err as Error).message); }
})();
if (f.help) { console.log(USAGE); process.exit(0); }

const num = (name: string, v: string | undefined, dflt: number, ok: (n: number) => boolean): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || !ok(n)) fail(`--${name}: ${JSON.stringify(v)} is out of range`);
  return n;
};
const seed = num('seed', f.seed, randomBytes(4).readUInt32BE(0), (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32);
const minutes = num('minutes', f.minutes, 3, (n) => n > 0 && n <= 24 * 60);
const members = num('members', f.members, 4, (n) => Number.isInteger(n) && n >= 4 && n <= 10);
const rate = num('rate', f.rate, 200, (n) => n > 0 && n <= 5000);
const kinds = (f.faults?.split(',') ?? [...FAULT_KINDS]) as FaultKind[];
for (const k of kinds) if (!FAULT_KINDS.includes(k)) fail(`--faults: unknown kind ${JSON.stringify(k)}`);

const why = unavailableReason();
if (why) { console.error(`chaos: cannot run: ${why}`); process.exit(2); }

const t0 = Date.now();
const say = (s: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${s}`);
say(`seed ${seed}, ${minutes} min of faults, ${members} members, ${rate} tx/s; first faults: ${schedule(seed, 5, members, kinds).map(describeFault).join('; ')}`);

const fed = await Federation.start({ members, chainId: `chaos-${seed}`, consensusTmpfsMb: kinds.includes('disk-full') ? 256 : 0, log: say });
let ok = false;
let line = `chaos: seed=${seed} faults=0 acked=0 lost=0 duplicated=0 disagreements=0 recovered=0/0 recovery_p50_s=n/a recovery_max_s=n/a`;
try {
  // Clients: one per member; each call carries 10 transactions.
  const clients = members;
  const intervalMs = Math.max(10, Math.round((1000 * clients * 10) / rate));
  const r = await runCampaign(fed, { seed, minutes, kinds, workload: { clients, batch: 10, intervalMs }, log: say });
  ok = r.ok;
  line = r.line;
  for (const e of r.unexpectedExits) say(`service exited on its own: ${e}`);
  for (const p of r.report.streamProblems.slice(0, 10)) say(`stream: ${p}`);
  for (const d of r.report.disagreements.slice(0, 10)) say(`disagreement at height ${d.height}: ${JSON.stringify(d.hashes)}`);
  for (const tx of r.report.lost.slice(0, 10)) say(`lost (acked, never committed): ${tx.replace(/\.+$/, '')}`);
  for (const tx of r.report.duplicated.slice(0, 10)) say(`committed more than once: ${tx.replace(/\.+$/, '')}`);
  for (const x of r.faults.filter((x) => x.recoverySec === undefined)) say(`not recovered: ${x.description}${x.error ? ` (${x.error})` : ''}`);
  say(`heights ${r.report.heights.join(' ')}; acked ${r.report.acked}, refused ${r.report.refused}, indeterminate ${r.report.indeterminate}`);
} catch (err) {
  say(`campaign error: ${(err as Error).stack ?? String(err)}`);
} finally {
  const keep = !ok || f.keep === true;
  if (!ok) say(`FAILED: seed ${seed}; replay the schedule with: npm run chaos -- --seed ${seed} --minutes ${minutes}${f.faults ? ` --faults ${f.faults}` : ''}; work dir kept: ${fed.tb.workDir}`);
  else if (keep) say(`work dir kept: ${fed.tb.workDir}`);
  await fed.stop({ keepDir: keep });
}
console.log(line);
process.exit(ok ? 0 : 1);
