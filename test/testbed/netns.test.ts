// The test bed's own harness, on real namespaces: hosts reach each other and the controller, each
// network fault blocks what it says and nothing else, heal restores, the process faults do what
// they say, a full tmpfs refuses writes, and nothing is left behind (also after a crashed run).
// Skipped when not root or without `ip netns` / iptables.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CONTROLLER_ADDR, PREFIX, Testbed, unavailableReason, type Host } from './netns.ts';
import { Runner, type Service } from './procs.ts';

const skip = unavailableReason();

/** Dead: no such process, or a zombie waiting for its (re)parent to reap it. */
function gone(pid: number): boolean {
  try { return / Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ')')); } catch { return true; }
}
const PORT = 9000;

// A TCP and UDP listener on the host's address: prints "ready", then "udp <source>" per datagram.
const SERVER = `
import net from 'node:net'; import dgram from 'node:dgram';
const [addr, port] = process.argv.slice(-2);
const u = dgram.createSocket('udp4'); u.on('message', (_m, r) => console.log('udp ' + r.address));
u.bind(Number(port), addr, () => net.createServer((s) => s.end()).listen(Number(port), addr, () => console.log('ready')));`;

describe('test bed harness', { skip: skip ?? false, timeout: 120_000 }, () => {
  let tb: Testbed;
  let runner: Runner;
  let a: Host, b: Host, c: Host;
  const servers = new Map<string, Service>();

  /** Can `from` (a host, or the controller) open a TCP connection to `to` within 1 s? */
  function reaches(from: Host | 'controller', to: Host): Promise<boolean> {
    if (from === 'controller') {
      return new Promise((resolve) => {
        const s = net.connect({ host: to.addr, port: PORT, timeout: 1000 });
        s.on('connect', () => { s.destroy(); resolve(true); });
        s.on('timeout', () => { s.destroy(); resolve(false); });
        s.on('error', () => resolve(false));
      });
    }
    const r = spawnSync('ip', ['netns', 'exec', from.ns, 'timeout', '1', 'bash', '-c', `exec 3<>/dev/tcp/${to.addr}/${PORT}`]);
    return Promise.resolve(r.status === 0);
  }

  /** Sends `n` UDP datagrams from `from` to `to` and returns how many `to` logged. */
  async function udp(from: Host, to: Host, n: number): Promise<number> {
    const server = servers.get(to.name)!;
    const before = fs.readFileSync(server.logFile, 'utf8').split('\n').filter((l) => l === `udp ${from.addr}`).length;
    spawnSync('ip', ['netns', 'exec', from.ns, 'bash', '-c', `for i in $(seq ${n}); do echo x > /dev/udp/${to.addr}/${PORT}; done`]);
    await new Promise((r) => setTimeout(r, 300));
    return fs.readFileSync(server.logFile, 'utf8').split('\n').filter((l) => l === `udp ${from.addr}`).length - before;
  }

  before(async () => {
    // A crashed run's leftover: a namespace of ours with a process in it. create() must remove both.
    spawnSync('ip', ['netns', 'add', `${PREFIX}-stale`]);
    const stale = spawnSync('ip', ['netns', 'exec', `${PREFIX}-stale`, 'bash', '-c', 'sleep 300 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const stalePid = Number(stale.stdout.trim());
    tb = await Testbed.create(['a', 'b', 'c']);
    assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`${PREFIX}-stale`), 'the stale namespace is gone');
    assert.ok(gone(stalePid), 'the stale process is gone');
    runner = new Runner(tb);
    [a, b, c] = ['a', 'b', 'c'].map((n) => tb.host(n)) as [Host, Host, Host];
    for (const h of [a, b, c]) {
      servers.set(h.name, await runner.start({ host: h, name: `probe-${h.name}`, cmd: process.execPath, args: () => ['--input-type=module', '-e', SERVER, h.addr, String(PORT)], readyLine: 'ready' }));
    }
  });

  // A failed test must not leave its fault on for the next.
  afterEach(() => { if (tb && a) try { tb.heal(); } catch { /* destroyed */ } });
  after(() => tb?.destroy());

  test('hosts have their own addresses and reach each other and the controller', async () => {
    assert.deepEqual([a.addr, b.addr, c.addr], ['10.213.0.1', '10.213.0.2', '10.213.0.3']);
    assert.ok(await reaches(a, b));
    assert.ok(await reaches(b, a));
    assert.ok(await reaches('controller', a));
    const addrs = tb.run(a, 'ip', ['-4', '-o', 'addr', 'show']);
    assert.match(addrs, /lo\s+inet 127\.0\.0\.1/, 'loopback up');
    assert.match(addrs, /eth0\s+inet 10\.213\.0\.1\/24/);
  });

  test('a host added while the test runs gets the next address, reaches the others and the controller, and takes faults like any', async () => {
    const d = tb.addHost('d');
    assert.equal(d.addr, '10.213.0.4');
    assert.throws(() => tb.addHost('d'), /exists/);
    assert.throws(() => tb.addHost('Bad_Name'), /must be 1-11 of/);
    servers.set('d', await runner.start({ host: d, name: 'probe-d', cmd: process.execPath, args: () => ['--input-type=module', '-e', SERVER, d.addr, String(PORT)], readyLine: 'ready' }));
    assert.ok(await reaches(d, a));
    assert.ok(await reaches(a, d));
    assert.ok(await reaches('controller', d));
    tb.partition(d);
    assert.equal(await reaches(a, d), false, 'partitioned like the hosts made at create');
    tb.heal(d);
    assert.ok(await reaches(a, d));
  });

  test('symmetric partition: nothing in or out but the allowed hosts and the controller; heal restores', async () => {
    tb.partition(a, { allow: [c] });
    assert.equal(await reaches(a, b), false, 'a → b cut');
    assert.equal(await reaches(b, a), false, 'b → a cut');
    assert.equal(await udp(a, b, 5), 0, "a's datagrams never leave");
    assert.ok(await reaches(a, c), 'a → c allowed');
    assert.ok(await reaches('controller', a), 'the controller still sees a');
    assert.ok(await reaches(a, a), 'a reaches itself');
    assert.throws(() => tb.partition(a), /already has a network fault/);
    tb.heal(a);
    assert.deepEqual(tb.rules(a), []);
    assert.ok(await reaches(a, b));
    assert.ok(await reaches(b, a));
  });

  test('asymmetric partition: the host sends but receives nothing', async () => {
    tb.partitionInbound(a);
    assert.equal(await udp(a, b, 5), 5, "a's datagrams reach b");
    assert.equal(await udp(b, a, 5), 0, "b's datagrams never reach a");
    tb.heal();
    assert.equal(await udp(b, a, 5), 5);
  });

  test('a cut pair: a and b cannot talk, both still reach c', async () => {
    tb.cut(a, b);
    assert.equal(await reaches(a, b), false);
    assert.equal(await reaches(b, a), false);
    assert.ok(await reaches(a, c));
    assert.ok(await reaches(b, c));
    tb.heal();
    assert.ok(await reaches(a, b));
  });

  test('random loss drops about the given fraction (iptables statistic)', async () => {
    tb.loss(a, 0.5);
    assert.match(tb.rules(a).join('\n'), /statistic --mode random --probability 0\.5/);
    const got = await udp(b, a, 200);
    // Each datagram crosses b's OUTPUT (no rule) and a's INPUT (p = 0.5): 100 expected; ±6σ.
    assert.ok(got > 55 && got < 145, `received ${got} of 200 at 50 % loss`);
    tb.heal();
    assert.equal(await udp(b, a, 20), 20);
  });

  test('process faults: pause/resume, kill -9 and restart; an exit the test did not cause is recorded', async () => {
    const s = servers.get('c')!;
    runner.pause(s);
    // SIGSTOP takes effect when the kernel next schedules the process: look until it has (≤ 2 s).
    const state = () => fs.readFileSync(`/proc/${s.pid}/stat`, 'utf8');
    for (let i = 0; i < 40 && !/\) T /.test(state()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(state(), /\) T /, 'stopped');
    assert.equal(await reaches(a, c), true, 'the kernel still accepts connections for a paused process');
    runner.resume(s);
    const pid = s.pid!;
    await runner.kill(s);
    assert.equal(await reaches(a, c), false, 'killed');
    await runner.restart(s);
    assert.notEqual(s.pid, pid);
    assert.ok(await reaches(a, c), 'restarted');
    assert.deepEqual(runner.unexpectedExits(), []);
    process.kill(s.pid!, 'SIGKILL'); // not through the runner: as if it died on its own
    await s.exited;
    assert.equal(runner.unexpectedExits().length, 1);
    assert.equal(runner.unexpectedExits()[0]!.signal, 'SIGKILL');
    runner.exits.length = 0;
    await runner.restart(s);
  });

  test('host down: link down cuts it off, up restores', async () => {
    tb.link(b, false);
    assert.equal(await reaches(a, b), false);
    assert.equal(await reaches('controller', b), false);
    tb.link(b, true);
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) { ok = await reaches(a, b); if (!ok) await new Promise((r) => setTimeout(r, 100)); }
    assert.ok(ok, 'b is back');
  });

  test('a full tmpfs refuses writes; freeing it lets them through', () => {
    const dir = path.join(tb.workDir, 'disk');
    tb.mountTmpfs(dir, 4);
    tb.fillDisk(dir);
    assert.throws(() => fs.writeFileSync(path.join(dir, 'x'), Buffer.alloc(64 * 1024)), /ENOSPC/);
    tb.freeDisk(dir);
    fs.writeFileSync(path.join(dir, 'x'), Buffer.alloc(64 * 1024));
  });

  test('destroy removes namespaces, links, mounts and processes', async () => {
    const pids = [...servers.values()].map((s) => s.pid!);
    const mounted = path.join(tb.workDir, 'disk');
    tb.destroy();
    assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(`${PREFIX}-`), 'no namespace of ours');
    assert.notEqual(spawnSync('ip', ['link', 'show', `${PREFIX}0`]).status, 0, 'no controller link');
    assert.ok(!fs.readFileSync('/proc/self/mounts', 'utf8').includes(mounted), 'tmpfs unmounted');
    assert.ok(!fs.existsSync(tb.workDir), 'work dir removed');
    await new Promise((r) => setTimeout(r, 200));
    for (const pid of pids) assert.ok(gone(pid), `pid ${pid} is gone`);
    assert.equal(spawnSync('ip', ['route', 'get', CONTROLLER_ADDR], { encoding: 'utf8' }).stdout.includes(`${PREFIX}0`), false);
  });
});
