// A keyless stranger's connection flood against one real gateway (store + gateway processes on
// 127.0.0.1): four libp2p nodes in this process, each dialling from a loopback address of its own
// (127.0.0.2–5, hosts where no validator is), connect and hang up in a loop. Printed per mode: the
// gateway's CPU a second, connections that reached the handshake, connections refused before it,
// and what one of each costs. Modes, in the same run:
//  - idle: no flood (the baseline the others are read against);
//  - gate open: peers.inbound_connections_* set out of the way (what a gateway did before the gate:
//    libp2p's own limit of 200 a second per host never bound one stranger);
//  - defaults: the gate as a member runs it.
//  - defaults + firewall (--firewall, as root): the same, with `btcfed firewall --apply`'s kernel
//    rules in front of the gateway. The whole bench then runs in a network namespace of its own
//    (with a NATS server of its own there), so the rules never touch this host's firewall.
// --profile: the gateway's CPU profile under the defaults' flood (self time, top 25).
// --parallel N: dials each stranger keeps going at once (default 1). A dropped SYN holds a dial
// until its timeout (1 s here), so against the firewall a flood needs many at once to press.
// Run: node_modules/.bin/node bench/connection-flood.ts [--seconds 10] [--quick] [--profile] [--firewall] [--parallel N]

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { gatewayCounter, makeCluster, startMember, stopAll, strangerNode, type GatewayMember, type Node } from '../test/support/gateway.ts';
import { profileProcess, topSelf } from './attach-profile.ts';
import { printMachine, processCpuMs, table } from './support.ts';

const arg = (name: string, dflt: number) => { const i = process.argv.indexOf(name); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
const SECONDS = arg('--seconds', process.argv.includes('--quick') ? 5 : 10);
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
const OPEN = { rate: 1e6, burst: 1e6 };
const PROFILE = process.argv.includes('--profile');
const FIREWALL = process.argv.includes('--firewall');
const PARALLEL = arg('--parallel', 1);
const NETNS_ENV = 'BTCFED_FLOOD_NETNS';

if (FIREWALL && !process.env[NETNS_ENV]) process.exit(runInNamespace());

/** Runs this bench again inside a fresh network namespace with its own NATS; removes both after. Returns its exit code. */
function runInNamespace(): number {
  if (process.getuid?.() !== 0) { console.error('connection-flood: --firewall needs root (a network namespace and iptables)'); return 2; }
  const ns = `btcfedfl-${process.pid}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-flood-'));
  const ok = (args: string[]) => { const r = spawnSync('ip', args, { encoding: 'utf8' }); if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`); };
  ok(['netns', 'add', ns]);
  const nats = spawn('ip', ['netns', 'exec', ns, 'nats-server', '-a', '127.0.0.1', '-p', '4222', '-js', '-sd', dir], { stdio: 'ignore' });
  try {
    ok(['-n', ns, 'link', 'set', 'lo', 'up']);
    for (let i = 0; ; i++) {
      if (spawnSync('ip', ['netns', 'exec', ns, 'bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/4222'], { stdio: 'ignore' }).status === 0) break;
      if (i === 50) throw new Error('the namespace\'s NATS server did not start');
      spawnSync('sleep', ['0.1']);
    }
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, import.meta.filename, ...process.argv.slice(2)],
      { stdio: 'inherit', env: { ...process.env, [NETNS_ENV]: ns, NATS_URL: 'nats://127.0.0.1:4222' } });
    return r.status ?? 1;
  } finally {
    nats.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', ns]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Row { mode: string; cpuMsPerS: number; handshakes: number; refused: number }

async function run(mode: string, peers: Record<string, unknown> | undefined, flood: boolean, profile = false, firewall = false): Promise<Row> {
  let members: GatewayMember[] = [];
  let node: Node | undefined;
  const strangers = await Promise.all(HOSTS.map((from) => strangerNode(undefined, { from })));
  try {
    members = await makeCluster(1, { logLevel: 'info', ...(peers ? { peers } : {}) });
    node = await startMember(members[0]!, ['--metrics', '127.0.0.1:0']);
    const pid = node.gw.svc.proc.pid!;
    const target = multiaddr(`${members[0]!.address}/p2p/${members[0]!.identity.peerId}`);
    if (firewall) {
      const r = spawnSync(process.execPath, [path.resolve(import.meta.dirname, '../cli/main.ts'), 'firewall', '--member', members[0]!.dir, '--apply'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`btcfed firewall --apply: ${r.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 2000)); // past the start's own work
    const refused = async () => await gatewayCounter(node!.gw, 'connections_refused_total', 'reason="host_rate"')
      + await gatewayCounter(node!.gw, 'connections_refused_total', 'reason="unknown_hosts_rate"');
    const [cpu0, refused0, t0] = [processCpuMs(pid)!, await refused(), performance.now()];
    let handshakes = 0;
    // Dials to one peer at once may be answered with one connection: count each connection once.
    const seen = new Set<string>();
    const end = Date.now() + SECONDS * 1000;
    const profiled = profile ? profileProcess(pid, Math.max(1, SECONDS - 2)) : undefined;
    await Promise.all(flood ? strangers.flatMap((s) => Array.from({ length: PARALLEL }, async () => {
      while (Date.now() < end) {
        try {
          const conn = await s.dial(target, { force: true, signal: AbortSignal.timeout(1000) });
          if (!seen.has(conn.id)) { seen.add(conn.id); handshakes++; }
          await conn.close();
        } catch { await new Promise((r) => setTimeout(r, 2)); }
      }
    })) : [new Promise((r) => setTimeout(r, SECONDS * 1000))]);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = processCpuMs(pid)! - cpu0;
    if (profiled) {
      console.log(`gateway profile under the flood (${mode}), self time:`);
      for (const r of topSelf(await profiled)) console.log(`${(100 * r.share).toFixed(1).padStart(5)} %  ${r.ms.toFixed(0).padStart(6)} ms  ${r.fn}`);
    }
    return { mode, cpuMsPerS: cpu / seconds, handshakes: handshakes / seconds, refused: (await refused() - refused0) / seconds };
  } finally {
    await Promise.allSettled(strangers.map((s) => s.stop()));
    await stopAll(node ? [node] : [], members);
  }
}

printMachine('connection flood: four keyless strangers (127.0.0.2–5) connect to one gateway and hang up, in a loop',
  [`window ${SECONDS} s per mode`, `${PARALLEL} dial(s) at once per stranger`, ...(FIREWALL ? [`in network namespace ${process.env[NETNS_ENV]}`] : [])]);
const idle = await run('idle (baseline)', undefined, false);
const open = await run('gate open (before the gate)', { inbound_connections_per_host: OPEN, inbound_connections_unknown_hosts: OPEN }, true);
const dflt = await run('defaults', undefined, true, PROFILE);
// Last: its rules stay in the namespace until the bench ends.
const fw = FIREWALL ? [await run('defaults + btcfed firewall', undefined, true, false, true)] : [];
const f = (x: number) => x.toFixed(1);
const perHandshake = (open.cpuMsPerS - idle.cpuMsPerS) / Math.max(1e-9, open.handshakes);
console.log(table(['mode', 'gateway CPU-ms/s', 'over idle', 'handshakes/s', 'refused before the handshake/s'], [idle, open, dflt, ...fw].map((r) => [
  r.mode, f(r.cpuMsPerS), f(r.cpuMsPerS - idle.cpuMsPerS), f(r.handshakes), f(r.refused),
])));
// What a refused connection costs: the defaults' extra CPU less its handshakes at the open mode's price.
const perRefused = dflt.refused > 0 ? (dflt.cpuMsPerS - idle.cpuMsPerS - dflt.handshakes * perHandshake) / dflt.refused : NaN;
console.log(`connection-flood: the flood costs the gateway ${f(open.cpuMsPerS - idle.cpuMsPerS)} CPU-ms/s with the gate open, ${f(dflt.cpuMsPerS - idle.cpuMsPerS)} with the defaults (idle ${f(idle.cpuMsPerS)}); a handshake ${f(perHandshake)} ms, a refused connection ~${perRefused.toFixed(2)} ms`);
if (fw[0]) console.log(`connection-flood: with the kernel's rules in front (btcfed firewall), the flood costs the gateway ${f(fw[0].cpuMsPerS - idle.cpuMsPerS)} CPU-ms/s against ${f(dflt.cpuMsPerS - idle.cpuMsPerS)} with the gate alone (same run)`);
