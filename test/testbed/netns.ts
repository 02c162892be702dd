// The test bed: hosts as Linux network namespaces, each with its own address on one bridge, and
// network faults on them as iptables rules inside a host's namespace.
//
// Layout (everything carries the PREFIX, so a crashed run's leftovers can be found and removed):
//   - a hub namespace `btcfedtb-hub` holding the bridge `br0`;
//   - per host a namespace `btcfedtb-<host>` with loopback up and `eth0` (a veth whose other end
//     sits on the bridge), address 10.213.0.<n>/24;
//   - one veth from the root namespace (`btcfedtb0`, 10.213.0.254) to the bridge: the controller
//     (the test, its workload and checker) reaches every host through it. Faults never cut the
//     controller, so it keeps observing a partitioned host (like a client on the same side).
// Root's firewall is never touched: every iptables rule lives in a host namespace and goes with it.
// Only addresses of this subnet are ever used.
//
// Every command here is synchronous (ip and iptables return in milliseconds), so cleanup can run
// from a signal handler or the 'exit' event as well.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const PREFIX = 'btcfedtb';
/** The /24 of the test bed; checked to be unused by the root namespace before anything is made. */
export const SUBNET = '10.213.0';
export const CONTROLLER_ADDR = `${SUBNET}.254`;
const HUB = `${PREFIX}-hub`;
const CONTROLLER_IF = `${PREFIX}0`;
/** One test bed per machine at a time: the holder's pid. */
const LOCK = path.join(os.tmpdir(), `${PREFIX}.lock`);
/** Work dirs are made under os.tmpdir() with this prefix; tmpfs mounts under them are ours. */
export const WORKDIR_PREFIX = path.join(os.tmpdir(), `${PREFIX}-`);

export interface Host {
  /** Short name (letters, digits, '-'); the namespace is `btcfedtb-<name>`. */
  readonly name: string;
  readonly ns: string;
  readonly addr: string;
}

/** Why the test bed cannot run here, or undefined when it can (root, ip netns, iptables). */
export function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'the test bed needs Linux network namespaces';
  if (process.getuid?.() !== 0) return 'the test bed needs root (ip netns, iptables)';
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) return `\`ip netns\` is unavailable: ${ip.error?.message ?? ip.stderr.trim()} (bash scripts/ensure-tools.sh installs iproute2)`;
  const ipt = spawnSync('iptables', ['--version'], { encoding: 'utf8' });
  if (ipt.error || ipt.status !== 0) return `iptables is unavailable: ${ipt.error?.message ?? ipt.stderr.trim()} (bash scripts/ensure-tools.sh installs it)`;
  return undefined;
}

/** Runs a command, returning stdout; throws naming the command and its stderr. */
export function sh(cmd: string, args: readonly string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    if (opts.allowFail) return '';
    throw new Error(`testbed: \`${cmd} ${args.join(' ')}\` failed: ${r.error?.message ?? r.stderr.trim()}`);
  }
  return r.stdout;
}

const ip = (...args: string[]) => sh('ip', args);
const ipIn = (ns: string, ...args: string[]) => sh('ip', ['-n', ns, ...args]);
const iptablesIn = (ns: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args]);

function namespaces(): string[] {
  return sh('ip', ['netns', 'list'], { allowFail: true }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

function killNamespace(ns: string): void {
  const pids = sh('ip', ['netns', 'pids', ns], { allowFail: true }).split('\n').map(Number).filter((p) => p > 0);
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  // The kernel frees the namespace once its last process is gone; deleting the name is enough.
  sh('ip', ['netns', 'del', ns], { allowFail: true });
}

/** tmpfs mounts under our work dirs (made by mountTmpfs), deepest first. */
function ourMounts(): string[] {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
  return mounts.filter((m) => m.startsWith(WORKDIR_PREFIX)).sort((a, b) => b.length - a.length);
}

/**
 * Removes what an earlier run of this harness left behind (a crash, a SIGKILL): processes in our
 * namespaces, the namespaces, the controller veth, tmpfs mounts under our work dirs. Refuses while
 * another live process holds the test bed.
 */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  for (const m of ourMounts()) { sh('umount', ['-l', m], { allowFail: true }); removed.push(`mount ${m}`); }
  for (const ns of namespaces().filter((n) => n.startsWith(`${PREFIX}-`))) { killNamespace(ns); removed.push(`netns ${ns}`); }
  if (sh('ip', ['link', 'show', CONTROLLER_IF], { allowFail: true })) { sh('ip', ['link', 'del', CONTROLLER_IF], { allowFail: true }); removed.push(`link ${CONTROLLER_IF}`); }
  return removed;
}

/** Takes the machine's test bed lock, waiting up to `waitMs` for a live holder to finish. */
async function takeLock(waitMs: number): Promise<void> {
  const t0 = Date.now();
  let said = false;
  for (;;) {
    try {
      fs.writeFileSync(LOCK, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(fs.readFileSync(LOCK, 'utf8').trim());
    let alive = false;
    try { if (pid > 0 && pid !== process.pid) { process.kill(pid, 0); alive = true; } } catch { /* dead */ }
    if (!alive) { fs.rmSync(LOCK, { force: true }); continue; }
    if (Date.now() - t0 > waitMs) throw new Error(`testbed: another test bed is running (pid ${pid}, lock ${LOCK}) and did not finish within ${waitMs / 1000} s; one at a time per machine`);
    if (!said) { process.stderr.write(`testbed: waiting for the test bed of pid ${pid} to finish (lock ${LOCK})\n`); said = true; }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Throws when the root namespace already uses an address or route inside our /24. */
function checkSubnetFree(): void {
  const inSubnet = (a: string) => a.startsWith(`${SUBNET}.`);
  const addrs = JSON.parse(sh('ip', ['-j', '-4', 'addr', 'show'])) as { ifname: string; addr_info: { local: string }[] }[];
  for (const i of addrs) for (const a of i.addr_info) if (inSubnet(a.local)) throw new Error(`testbed: ${SUBNET}.0/24 is in use here (${a.local} on ${i.ifname}); the test bed needs it free`);
  const routes = JSON.parse(sh('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) as { dst: string; dev?: string }[];
  const toInt = (a: string) => a.split('.').reduce((n, x) => n * 256 + Number(x), 0);
  const ours = toInt(`${SUBNET}.0`);
  for (const r of routes) {
    if (r.dst === 'default') continue;
    const [net, bits] = r.dst.split('/');
    const len = Number(bits ?? 32);
    if (!net || !/^\d+\.\d+\.\d+\.\d+$/.test(net) || len === 0) continue;
    // Two prefixes overlap when they agree on the bits of the shorter one.
    const block = 2 ** (32 - Math.min(len, 24));
    if (Math.floor(toInt(net) / block) === Math.floor(ours / block)) {
      throw new Error(`testbed: route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''} overlaps ${SUBNET}.0/24; the test bed needs it free`);
    }
  }
}

type Rule = { chain: 'TB-IN' | 'TB-OUT'; args: string[] };

function checkHostName(n: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,10}$/.test(n) || n === 'hub') throw new Error(`testbed: host name ${JSON.stringify(n)} must be 1-11 of a-z, 0-9, '-' (and not "hub")`);
}

export class Testbed {
  readonly workDir: string;
  readonly hosts = new Map<string, Host>();
  readonly #faults = new Map<string, Rule[]>();
  readonly #mounts: string[] = [];
  readonly #cleanups: (() => void)[] = [];
  #destroyed = false;
  readonly #onSignal: (sig: NodeJS.Signals) => void;
  readonly #onExit: () => void;

  private constructor(workDir: string) {
    this.workDir = workDir;
    this.#onSignal = (sig) => {
      process.stderr.write(`testbed: ${sig}: cleaning up (work dir kept: ${this.workDir})\n`);
      this.destroy({ keepDir: true });
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    this.#onExit = () => this.destroy({ keepDir: true });
  }

  /**
   * Makes the hub, the controller link and one namespace per host name (addresses .1, .2, …).
   * One test bed per machine: waits (up to `lockWaitMs`, default 10 min) while another runs.
   */
  static async create(hostNames: readonly string[], opts: { workDir?: string; lockWaitMs?: number } = {}): Promise<Testbed> {
    const why = unavailableReason();
    if (why) throw new Error(`testbed: ${why}`);
    if (hostNames.length < 1 || hostNames.length > 200) throw new Error(`testbed: 1 to 200 hosts, got ${hostNames.length}`);
    for (const n of hostNames) checkHostName(n);
    if (new Set(hostNames).size !== hostNames.length) throw new Error('testbed: host names must be distinct');
    await takeLock(opts.lockWaitMs ?? 600_000);
    const tb = new Testbed(opts.workDir ?? fs.mkdtempSync(WORKDIR_PREFIX));
    process.on('SIGINT', tb.#onSignal);
    process.on('SIGTERM', tb.#onSignal);
    process.on('exit', tb.#onExit);
    try {
      const left = removeLeftovers();
      if (left.length > 0) process.stderr.write(`testbed: removed leftovers of an earlier run: ${left.join(', ')}\n`);
      checkSubnetFree();
      ip('netns', 'add', HUB);
      ipIn(HUB, 'link', 'set', 'lo', 'up');
      ipIn(HUB, 'link', 'add', 'br0', 'type', 'bridge');
      ipIn(HUB, 'link', 'set', 'br0', 'up');
      ip('link', 'add', CONTROLLER_IF, 'type', 'veth', 'peer', 'name', 'ctl', 'netns', HUB);
      ipIn(HUB, 'link', 'set', 'ctl', 'master', 'br0', 'up');
      ip('addr', 'add', `${CONTROLLER_ADDR}/24`, 'dev', CONTROLLER_IF);
      ip('link', 'set', CONTROLLER_IF, 'up');
      for (const name of hostNames) tb.addHost(name);
    } catch (err) {
      tb.destroy({ keepDir: true });
      throw err;
    }
    return tb;
  }

  /**
   * A host of its own (a network namespace on the hub), with the next address (.1, .2, … in the
   * order hosts were made): at create, or later, as a machine brought in while the test runs.
   */
  addHost(name: string): Host {
    checkHostName(name);
    if (this.hosts.has(name)) throw new Error(`testbed: host ${JSON.stringify(name)} exists`);
    if (this.hosts.size >= 200) throw new Error('testbed: at most 200 hosts');
    const addr = `${SUBNET}.${this.hosts.size + 1}`;
    const ns = `${PREFIX}-${name}`;
    ip('netns', 'add', ns);
    ipIn(ns, 'link', 'set', 'lo', 'up');
    ipIn(HUB, 'link', 'add', `v-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ipIn(HUB, 'link', 'set', `v-${name}`, 'master', 'br0', 'up');
    ipIn(ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    ipIn(ns, 'link', 'set', 'eth0', 'up');
    // Our own chains, hooked first into INPUT and OUTPUT; a fault is rules in them, heal flushes them.
    for (const [chain, hook] of [['TB-IN', 'INPUT'], ['TB-OUT', 'OUTPUT']] as const) {
      iptablesIn(ns, '-N', chain);
      iptablesIn(ns, '-I', hook, '-j', chain);
    }
    const host = { name, ns, addr };
    this.hosts.set(name, host);
    return host;
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`testbed: no host ${JSON.stringify(name)} (hosts: ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  /** argv that runs `cmd args` inside the host's namespace (for spawn). */
  execArgv(host: Host, cmd: string, args: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', host.ns, cmd, ...args]];
  }

  /** Runs a short command inside a host's namespace and returns its stdout. */
  run(host: Host, cmd: string, args: readonly string[]): string {
    return sh('ip', ['netns', 'exec', host.ns, cmd, ...args]);
  }

  // ---- network faults (rules in the host's own TB-IN / TB-OUT chains) ----

  #add(host: Host, rules: Rule[]): void {
    if (this.#faults.has(host.name)) throw new Error(`testbed: ${host.name} already has a network fault; heal it first (one at a time per host)`);
    this.#faults.set(host.name, rules); // before applying: heal flushes a half-applied fault too
    for (const r of rules) iptablesIn(host.ns, '-A', r.chain, ...r.args);
  }

  /** Loopback and the controller always pass, in front of the fault's rules. */
  #passes(allow: readonly Host[]): Rule[] {
    const rules: Rule[] = [
      { chain: 'TB-IN', args: ['-i', 'lo', '-j', 'RETURN'] }, { chain: 'TB-OUT', args: ['-o', 'lo', '-j', 'RETURN'] },
      { chain: 'TB-IN', args: ['-s', CONTROLLER_ADDR, '-j', 'RETURN'] }, { chain: 'TB-OUT', args: ['-d', CONTROLLER_ADDR, '-j', 'RETURN'] },
    ];
    for (const a of allow) rules.push({ chain: 'TB-IN', args: ['-s', a.addr, '-j', 'RETURN'] }, { chain: 'TB-OUT', args: ['-d', a.addr, '-j', 'RETURN'] });
    return rules;
  }

  /** Symmetric partition: the host neither sends to nor receives from any host but `allow`. */
  partition(host: Host, opts: { allow?: readonly Host[] } = {}): void {
    this.#add(host, [...this.#passes(opts.allow ?? []),
      { chain: 'TB-IN', args: ['-j', 'DROP'] }, { chain: 'TB-OUT', args: ['-j', 'DROP'] }]);
  }

  /** Asymmetric partition: the host's packets leave, nothing from other hosts (but `allow`) arrives. */
  partitionInbound(host: Host, opts: { allow?: readonly Host[] } = {}): void {
    this.#add(host, [...this.#passes(opts.allow ?? []), { chain: 'TB-IN', args: ['-j', 'DROP'] }]);
  }

  /** Cuts one pair of hosts (both directions), e.g. a signer host from its consensus host. */
  cut(a: Host, b: Host): void {
    this.#add(a, [...this.#passes([]),
      { chain: 'TB-IN', args: ['-s', b.addr, '-j', 'DROP'] }, { chain: 'TB-OUT', args: ['-d', b.addr, '-j', 'DROP'] }]);
  }

  /** Random loss of a fraction `p` of the host's packets to and from other hosts, each way. */
  loss(host: Host, p: number): void {
    if (!(p > 0 && p < 1)) throw new Error(`testbed: loss probability must be in (0, 1), got ${p}`);
    const stat = ['-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP'];
    this.#add(host, [...this.#passes([]), { chain: 'TB-IN', args: stat }, { chain: 'TB-OUT', args: stat }]);
  }

  /** Removes every network fault of the host (or of every host). */
  heal(host?: Host): void {
    for (const h of host ? [host] : [...this.hosts.values()]) {
      if (!this.#faults.has(h.name)) continue;
      iptablesIn(h.ns, '-F', 'TB-IN');
      iptablesIn(h.ns, '-F', 'TB-OUT');
      this.#faults.delete(h.name);
    }
  }

  /** The host's current fault rules as iptables prints them (for logs and tests). */
  rules(host: Host): string[] {
    return [...iptablesIn(host.ns, '-S', 'TB-IN').split('\n'), ...iptablesIn(host.ns, '-S', 'TB-OUT').split('\n')]
      .filter((l) => l.startsWith('-A'));
  }

  /** The host's interface down (with its processes, see Runner.hostDown) or up again. */
  link(host: Host, up: boolean): void {
    ipIn(host.ns, 'link', 'set', 'eth0', up ? 'up' : 'down');
  }

  // ---- disk ----

  /** A tmpfs of `sizeMb` at `dir` (made if missing), unmounted by destroy. */
  mountTmpfs(dir: string, sizeMb: number): void {
    if (!path.resolve(dir).startsWith(WORKDIR_PREFIX)) throw new Error(`testbed: tmpfs only under the work dir, not ${dir}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    sh('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir]);
    this.#mounts.push(path.resolve(dir));
  }

  /** Fills the file system of `dir` (a tmpfs from mountTmpfs) until writes fail with ENOSPC. */
  fillDisk(dir: string): string {
    const file = path.join(dir, '.testbed-fill');
    const fd = fs.openSync(file, 'a');
    const chunk = Buffer.alloc(1 << 20);
    try {
      for (;;) {
        try { fs.writeSync(fd, chunk); } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
            // The last partial page too.
            for (let size = chunk.length >> 1; size >= 512; size >>= 1) { try { fs.writeSync(fd, chunk.subarray(0, size)); } catch { /* full */ } }
            return file;
          }
          throw err;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Frees what fillDisk took. */
  freeDisk(dir: string): void {
    fs.rmSync(path.join(dir, '.testbed-fill'), { force: true });
  }

  /** Runs `fn` (synchronously) first thing in destroy, e.g. killing the processes of a Runner. */
  onDestroy(fn: () => void): void {
    this.#cleanups.push(fn);
  }

  /**
   * Removes everything the test bed made: processes (onDestroy, then whatever is left in its
   * namespaces), tmpfs mounts, namespaces (their iptables rules go with them), the controller link.
   * The work dir is removed unless keepDir (a failing run keeps it for the post-mortem).
   */
  destroy(opts: { keepDir?: boolean } = {}): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
    process.off('exit', this.#onExit);
    for (const fn of this.#cleanups.reverse()) {
      try { fn(); } catch { /* keep cleaning */ }
    }
    for (const h of this.hosts.values()) killNamespace(h.ns);
    for (const m of this.#mounts.reverse()) sh('umount', ['-l', m], { allowFail: true });
    killNamespace(HUB);
    sh('ip', ['link', 'del', CONTROLLER_IF], { allowFail: true });
    if (!opts.keepDir) fs.rmSync(this.workDir, { recursive: true, force: true });
    try { if (fs.readFileSync(LOCK, 'utf8').trim() === String(process.pid)) fs.rmSync(LOCK, { force: true }); } catch { /* none */ }
  }
}

