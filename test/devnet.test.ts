// `btcfed devnet` as an operator runs it (the real CLI, a real 1-member federation of four
// processes): each service writes its own log and pid file, a service that dies is started
// again (also when the member logs warnings only: its ready line is written at any level), and
// when the devnet parent itself dies the services keep running and keep logging, up to a clean
// shutdown with a client still attached.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_FLAGS, serviceEnv } from '#libs/service/node-flags.ts';
import { consensusClient } from '../cli/client.ts';
import { freePortBlock } from './support/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;

async function until<T>(what: string, probe: () => T | undefined, ms = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
const pidOf = (dir: string, service: string): number | undefined => {
  try { return Number(fs.readFileSync(path.join(dir, 'm0', 'run', `${service}.pid`), 'utf8').trim()) || undefined; } catch { return undefined; }
};
const logOf = (dir: string, service: string): string => fs.readFileSync(path.join(dir, 'm0', 'logs', `${service}.log`), 'utf8');
const count = (text: string, needle: string): number => text.split(needle).length - 1;

test('devnet: services log to their own files, a killed service is started again, and they outlive a dead parent', { timeout: 180_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-devnet-'));
  const basePort = await freePortBlock(17_000, 10);
  const cli = spawn(process.execPath, ['cli/main.ts', 'devnet', '--members', '1', '--dir', dir, '--base-port', String(basePort), '--nats', NATS_URL],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  cli.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  cli.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const pids = () => SERVICES.map((s) => pidOf(dir, s)).filter((p): p is number => p !== undefined);
  try {
    await until('the devnet to be up', () => out.includes('federation is up'), 120_000);
    // It says where every service listens, as the member's conf.yaml has it.
    await until('the listen table', () => /where each service listens/.test(out) && /\n  m0 +consensus /.test(out), 10_000);
    assert.match(out, new RegExp(`\\n  m0 +consensus 127\\.0\\.0\\.1:\\d+  admin 127\\.0\\.0\\.1:\\d+  gateway \\S+  libp2p /ip4/\\S+  store \\S+  signer 127\\.0\\.0\\.1:\\d+`));
    for (const s of SERVICES) assert.ok(pidOf(dir, s) && alive(pidOf(dir, s)!), `${s} has a pid file naming a live process`);
    for (const s of SERVICES) {
      const argv = fs.readFileSync(`/proc/${pidOf(dir, s)}/cmdline`, 'utf8').split('\0');
      assert.deepEqual(argv.slice(1, 1 + NODE_FLAGS.length), [...NODE_FLAGS], `${s} runs with the services' Node flags: ${argv.join(' ')}`);
      const env = fs.readFileSync(`/proc/${pidOf(dir, s)}/environ`, 'utf8').split('\0');
      assert.ok(env.includes(`NODE_COMPILE_CACHE=${serviceEnv().NODE_COMPILE_CACHE}`), `${s} runs with the compile cache`);
    }

    // The member logs warnings only (hot reload); the restarted gateway must still be seen ready.
    const confFile = path.join(dir, 'm0', 'conf.yaml');
    fs.writeFileSync(confFile, fs.readFileSync(confFile, 'utf8').replace(/^(\s*level:\s*)info\s*$/m, '$1warn'));
    assert.match(fs.readFileSync(confFile, 'utf8'), /level: warn/);

    // kill -9 of the gateway: the devnet says so and starts it again.
    const before = pidOf(dir, 'gateway')!;
    process.kill(before, 'SIGKILL');
    const after = await until('the gateway to be started again', () => {
      const p = pidOf(dir, 'gateway');
      return p !== undefined && p !== before && alive(p) && count(logOf(dir, 'gateway'), '"gateway ready"') >= 2 ? p : undefined;
    });
    assert.notEqual(after, before);
    assert.match(out, /m0\/gateway exited \(SIGKILL\); starting it again/);
    await until('the devnet to report the gateway back', () => out.includes('m0/gateway is back'));

    // The parent dies without a word: the services run on, and what they log still reaches their files.
    cli.kill('SIGKILL');
    await new Promise((r) => cli.once('exit', r));
    const consensus = pidOf(dir, 'consensus')!;
    assert.ok(alive(consensus), 'consensus outlives the devnet parent');
    // A follower's stream stays open, so the gRPC server waits out its grace period (3 s) while
    // the other timers of the service (its 2 s ListPeers poll) keep firing: shutdown must still end cleanly.
    const client = consensusClient(path.join(dir, 'm0'));
    const follower = client.streamCommits({ fromHeight: 0, headersOnly: true });
    follower.on('error', () => undefined);
    await new Promise((r) => follower.once('data', r));
    process.kill(consensus, 'SIGTERM');
    await until('consensus to stop', () => !alive(consensus), 20_000);
    client.close();
    // From its last 'shutting down' on (a NATS close line may land after 'stopped'): a clean end, no crash.
    const log = logOf(dir, 'consensus');
    const shutdown = log.slice(log.lastIndexOf('"msg":"shutting down"'));
    assert.match(shutdown, /"msg":"stopped"/, 'its shutdown lines were written after the parent died');
    assert.doesNotMatch(shutdown, /Error:|^\s+at /m, 'and nothing crashed on the way');
  } finally {
    if (cli.exitCode === null) cli.kill('SIGKILL');
    for (const p of pids()) if (alive(p)) process.kill(p, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
