// Benchmark (prints figures, asserts nothing): what starting each service costs — the CPU a
// process has used when it says it is ready, restarted one at a time inside a running 4-member
// devnet (so the consensus catches up and the gateway dials, as after a crash). Baselines in the
// same run: the same binary loading its modules only (`--help`: imports, nothing started) and a
// bare node process with the services' flags. A member restarts often in a test run, under a
// supervisor after a crash, and on every upgrade; the CPU it spends before it is ready is also
// what a federation's processes on shared cores take from each other then.
// Run: node bench/startup.ts [--rounds R]   (R restarts of each service, spread over m0–m3; default 6)

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, SERVICES, type Service } from '../cli/devnet.ts';
import { NODE_FLAGS, serviceEnv } from '#libs/service/node-flags.ts';
import { benchDevnet, childrenCpuMs, printMachine, processCpuMs, stats, table } from './support.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('--rounds', process.argv.includes('--quick') ? 1 : 6);
const MEMBERS = 4;

/** CPU (ms) of a node child with the services' flags that runs `args` and exits. */
function childCpuMs(args: string[]): number {
  const before = childrenCpuMs();
  const r = spawnSync(process.execPath, [...NODE_FLAGS, ...args], { cwd: ROOT, stdio: 'ignore', env: serviceEnv() });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
  return childrenCpuMs() - before;
}

printMachine('service start-up', [`${ROUNDS} restarts of each service inside a running ${MEMBERS}-member devnet`]);
const bare: number[] = [];
const modulesOnly = new Map<Service, number[]>();
for (let r = 0; r < 3; r++) {
  bare.push(childCpuMs(['-e', '0']));
  for (const s of SERVICES) {
    const list = modulesOnly.get(s) ?? [];
    list.push(childCpuMs([path.join('services', s, 'main.ts'), '--help']));
    modulesOnly.set(s, list);
  }
}

const dev = await benchDevnet('startup', MEMBERS);
const ready = new Map<Service, { cpu: number[]; wall: number[]; stop: number[] }>();
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of SERVICES) {
      const member = r % MEMBERS;
      const old = dev.net.procs.find((x) => x.member === `m${member}` && x.service === s && !x.exited);
      const t0 = performance.now();
      if (old) {
        const exited = new Promise((resolve) => old.child.once('exit', resolve));
        old.child.kill('SIGTERM');
        await exited;
      }
      const t1 = performance.now();
      await dev.net.restart(member, s);
      const wall = performance.now() - t1;
      const stop = t1 - t0;
      const p = dev.net.procs.find((x) => x.member === `m${member}` && x.service === s && !x.exited);
      const cpu = p?.child.pid !== undefined ? processCpuMs(p.child.pid) : undefined;
      const row = ready.get(s) ?? { cpu: [], wall: [], stop: [] };
      if (cpu !== undefined) row.cpu.push(cpu);
      row.wall.push(wall);
      row.stop.push(stop);
      ready.set(s, row);
    }
  }
} finally {
  await dev.close();
}

const med = (xs: readonly number[]) => (xs.length > 0 ? stats(xs).p50.toFixed(0) : '—');
console.log(table(
  ['service', 'CPU until ready (ms, p50)', 'min–max', 'stop wall (ms, p50: SIGTERM to exit)', 'start wall (ms, p50: spawned to ready)', 'baseline: modules only, --help (ms)'],
  SERVICES.map((s) => {
    const r = ready.get(s)!;
    return [s, med(r.cpu), `${Math.min(...r.cpu).toFixed(0)}–${Math.max(...r.cpu).toFixed(0)}`, med(r.stop), med(r.wall), med(modulesOnly.get(s)!)];
  }),
));
console.log(`baseline: a bare node process with the services' flags: ${med(bare)} ms CPU`);
