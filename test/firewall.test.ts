// `btcfed firewall --apply` on hosts of their own (network namespaces, test/testbed/netns.ts): a
// member's gateway host loads the rules made from its conf.yaml and peers.yaml, and a stranger's
// host that connects as fast as it can gets the burst and the rate the rules state, its other SYNs
// dropped by the kernel; the validator's host, named in peers.yaml, connects without limit; a
// source holding connections gets a reset past the count; applying again replaces the rules and
// hooks the chain once. The listener is a plain TCP server on the gateway's port (the kernel's
// rules are what is tested; the gateway's own gate is test/gateway-resilience.test.ts).
// Skipped when not root or without `ip netns` / iptables.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { Testbed, unavailableReason, type Host } from './testbed/netns.ts';
import { Runner } from './testbed/procs.ts';

const skip = unavailableReason();
const ROOT = path.resolve(import.meta.dirname, '..');
const PORT = 7105;

// Holds every connection until its client closes it (so a source's open connections count); prints "ready".
const SERVER = `
import net from 'node:net';
const [addr, port] = process.argv.slice(-2);
net.createServer((s) => { s.on('end', () => s.end()); s.on('error', () => s.destroy()); }).listen(Number(port), addr, () => console.log('ready'));`;

// Opens `n` connections, `c` at a time, each given `ms` to connect; closes each at once unless
// `hold`. Prints {ok, reset, timedOut, seconds}.
const CLIENT = `
import net from 'node:net';
const [addr, port, n, c, ms, hold] = process.argv.slice(-6).map((x, i) => (i === 0 ? x : Number(x)));
const out = { ok: 0, reset: 0, timedOut: 0, other: 0 };
const kept = [];
let next = 0;
const t0 = Date.now();
const one = () => new Promise((resolve) => {
  const s = net.connect({ host: addr, port });
  const timer = setTimeout(() => { out.timedOut++; s.destroy(); resolve(); }, ms);
  s.on('connect', () => { clearTimeout(timer); out.ok++; if (hold) kept.push(s); else s.destroy(); resolve(); });
  s.on('error', (e) => { clearTimeout(timer); if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET') out.reset++; else out.other++; resolve(); });
});
await Promise.all(Array.from({ length: c }, async () => { while (next++ < n) await one(); }));
// A reset after the handshake (connlimit answers the SYN itself, so it comes as ECONNREFUSED) — give late ones a moment.
await new Promise((r) => setTimeout(r, 200));
console.log(JSON.stringify({ ...out, seconds: (Date.now() - t0) / 1000 }));
for (const s of kept) s.destroy();`;

interface Tally { ok: number; reset: number; timedOut: number; other: number; seconds: number }

describe('btcfed firewall on hosts of their own', { skip: skip ?? false, timeout: 180_000 }, () => {
  let tb: Testbed;
  let runner: Runner;
  let gw: Host, val: Host, str: Host, str2: Host;
  let dir: string;
  const m0 = () => path.join(dir, 'm0');

  function inNs(host: Host, args: string[]): { status: number | null; out: string } {
    const r = spawnSync('ip', ['netns', 'exec', host.ns, ...args], { encoding: 'utf8' });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  }
  const firewall = (...extra: string[]) => inNs(gw, [process.execPath, path.join(ROOT, 'cli/main.ts'), 'firewall', '--member', m0(), ...extra]);
  /** Each test that needs the rules applies them itself (applying is idempotent): none passes on another's failure. */
  const apply = (...extra: string[]) => { const r = firewall('--apply', ...extra); assert.equal(r.status, 0, r.out); };

  function connect(from: Host, n: number, c: number, ms: number, hold = false): Promise<Tally> {
    return new Promise((resolve, reject) => {
      const p = spawn('ip', ['netns', 'exec', from.ns, process.execPath, '--input-type=module', '-e', CLIENT, gw.addr, String(PORT), String(n), String(c), String(ms), hold ? '1' : '0']);
      let out = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
      p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Tally) : reject(new Error(`client on ${from.name} exited ${code}: ${out}`))));
    });
  }

  before(async () => {
    tb = await Testbed.create(['fw-gw', 'fw-val', 'fw-str', 'fw-str2']);
    [gw, val, str, str2] = ['fw-gw', 'fw-val', 'fw-str', 'fw-str2'].map((n) => tb.host(n)) as [Host, Host, Host, Host];
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-fw-'));
    const init = spawnSync(process.execPath, [path.join(ROOT, 'cli/main.ts'), 'init', '--out', dir, '--members', '2'], { encoding: 'utf8' });
    assert.equal(init.status, 0, init.stderr);
    // m0's gateway listens on its host; peers.yaml places m1 (a validator) on the validator's host.
    const conf = parseDocument(fs.readFileSync(path.join(m0(), 'conf.yaml'), 'utf8'));
    conf.setIn(['network', 'addresses'], [`/ip4/0.0.0.0/tcp/${PORT}`]);
    fs.writeFileSync(path.join(m0(), 'conf.yaml'), conf.toString());
    const peersFile = path.join(m0(), 'peers.yaml');
    fs.writeFileSync(peersFile, fs.readFileSync(peersFile, 'utf8').replace(/\/ip4\/127\.0\.0\.1\/tcp\/\d+/g, `/ip4/${val.addr}/tcp/${PORT}`));
    runner = new Runner(tb);
    await runner.start({ host: gw, name: 'listener', cmd: process.execPath, args: () => ['--input-type=module', '-e', SERVER, '0.0.0.0', String(PORT)], readyLine: 'ready' });
  });

  after(async () => {
    await runner?.stopAll();
    tb?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('without the rules a stranger opens every connection it tries (what the rules must change)', async () => {
    const t = await connect(str2, 40, 8, 400);
    assert.equal(t.ok, 40, JSON.stringify(t));
  });

  test('printed, the rules name the validator\'s host and the rates; applied twice, the chain is replaced and hooked once', () => {
    const printed = firewall();
    assert.equal(printed.status, 0, printed.out);
    assert.match(printed.out, new RegExp(`-A BTCFED-GATEWAY -s ${val.addr.replaceAll('.', '\\.')}/32 -j RETURN`));
    assert.match(printed.out, /--hashlimit-above 2\/second --hashlimit-burst 16 /);
    const first = firewall('--apply', '--max-connections-per-source', '4');
    assert.equal(first.status, 0, first.out);
    assert.match(first.out, /loaded and hooked first in INPUT for TCP SYNs to port\(s\) 7105/);
    const again = firewall('--apply');
    assert.equal(again.status, 0, again.out);
    assert.match(again.out, /already hooked from INPUT/);
    const rules = inNs(gw, ['iptables', '-S']).out.split('\n');
    assert.equal(rules.filter((l) => l.includes('-j BTCFED-GATEWAY')).length, 1, rules.join('\n'));
    assert.deepEqual(rules.filter((l) => l.startsWith('-A BTCFED-GATEWAY') && l.includes('connlimit')).map((l) => /--connlimit-above (\d+)/.exec(l)?.[1]),
      ['32'], 'the second apply replaced the chain\'s rules');
  });

  test('a stranger connecting as fast as it can gets the burst and the rate, its other SYNs dropped', async () => {
    apply();
    const t = await connect(str, 120, 8, 300);
    console.log(`# a stranger trying 120 connections, 8 at a time: ${JSON.stringify(t)}`);
    const bound = 16 + Math.ceil(2 * t.seconds) + 1;
    assert.ok(t.ok <= bound, `${t.ok} connections in ${t.seconds.toFixed(1)} s: over the burst of 16 + 2 a second (${JSON.stringify(t)})`);
    assert.ok(t.ok >= 12, `only ${t.ok} connections: the burst was not given (${JSON.stringify(t)})`);
    assert.ok(t.timedOut > 0 && t.reset === 0, `past the rate SYNs are dropped, not answered: ${JSON.stringify(t)}`);
  });

  test('the validator\'s host connects as often as it likes', async () => {
    apply();
    const t = await connect(val, 120, 8, 1000);
    assert.equal(t.ok, 120, JSON.stringify(t));
  });

  test('a source holding its connections gets a reset past the count (4 here)', async () => {
    apply('--max-connections-per-source', '4');
    const t = await connect(str2, 10, 1, 1000, true);
    assert.deepEqual([t.ok, t.reset, t.timedOut], [4, 6, 0], JSON.stringify(t));
  });

  test('a member dir without an IPv6 listen address: --ipv6 says so and changes nothing', () => {
    const r = firewall('--ipv6', '--apply');
    assert.equal(r.status, 1);
    assert.match(r.out, /no IPv6 TCP listen address in network\.addresses/);
    assert.ok(!inNs(gw, ['ip6tables', '-S']).out.includes('BTCFED-GATEWAY'));
  });
});
