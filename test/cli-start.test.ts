// One CLI: `btcfed start <service>` runs a member's service with btcfed's usage, help and exit
// codes, and `--home` / `BTCFED_HOME` name the member dir for every command that takes --member.
// The real bin/btcfed, spawned; a real member dir (btcfed init) and a real store process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_FLAGS } from '#libs/service/node-flags.ts';
import { freePortBlock } from './support/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/btcfed');
const noHome = (): NodeJS.ProcessEnv => { const env = { ...process.env }; delete env.BTCFED_HOME; return env; };
const btcfed = (args: string[], env: NodeJS.ProcessEnv = noHome(), cwd = ROOT) =>
  spawnSync(BIN, args, { encoding: 'utf8', env, cwd, timeout: 60_000 });

test('btcfed start: help on stdout (exit 0), usage errors exit 2 naming what, a missing member dir exits 1 with its code', () => {
  const help = btcfed(['start', '--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: btcfed start/);
  for (const s of ['store', 'gateway', 'consensus', 'signer']) assert.match(help.stdout, new RegExp(`\\n  ${s} \\[options\\]`), `start lists ${s}`);
  const one = btcfed(['start', 'consensus', '--help']);
  assert.equal(one.status, 0);
  assert.match(one.stdout, /^Usage: btcfed start consensus \[options\]/);
  assert.match(one.stdout, /--home <dir>/);
  assert.match(one.stdout, /--admin-listen <host:port>/);

  const unknown = btcfed(['start', 'frobnicate']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /^btcfed: unknown command 'frobnicate'/);
  const flag = btcfed(['start', 'store', '--bogus']);
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /^btcfed: unknown option '--bogus'\n\(btcfed start store --help shows the usage\)/);
  const bare = btcfed(['start']);
  assert.equal(bare.status, 2, 'start without a service is usage');

  const missing = btcfed(['start', 'store', '--home', '/nonexistent-member']);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, 'btcfed: /nonexistent-member/conf.yaml not found: --home (or BTCFED_HOME) must name the member dir (MEMBER_DIR_INVALID)\n');
  assert.doesNotMatch(missing.stderr + missing.stdout, /FATAL|"level"/, 'no service log lines: nothing was started');
  const signer = btcfed(['start', 'signer'], { ...noHome(), BTCFED_HOME: '/nonexistent-signer' });
  assert.equal(signer.status, 1);
  assert.match(signer.stderr, /^btcfed: \/nonexistent-signer\/signer.yaml not found: .* \(MEMBER_DIR_INVALID\)\n$/);
});

test('--home and BTCFED_HOME name the member dir of every command that takes --member; --member and --home together is usage', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-home-'));
  try {
    // From a directory with no .devnet: the default would be ./.devnet/m0.
    const byDefault = btcfed(['show-node-id'], noHome(), tmp);
    assert.equal(byDefault.status, 1);
    assert.match(byDefault.stderr, new RegExp(`${tmp}/\\.devnet/m0/conf\\.yaml not found`));
    for (const cmd of [['status'], ['admin', 'pause'], ['reconfigure', 'history']]) {
      const flag = btcfed([...cmd, '--home', '/srv/nowhere-a'], noHome(), tmp);
      assert.equal(flag.status, 1, `${cmd.join(' ')} --home: ${flag.stderr}`);
      assert.match(flag.stderr, /\/srv\/nowhere-a\/conf\.yaml/, `${cmd.join(' ')} --home names the member dir`);
      const env = btcfed(cmd, { ...noHome(), BTCFED_HOME: '/srv/nowhere-b' }, tmp);
      assert.equal(env.status, 1, `${cmd.join(' ')} with BTCFED_HOME: ${env.stderr}`);
      assert.match(env.stderr, /\/srv\/nowhere-b\/conf\.yaml/, `${cmd.join(' ')}: BTCFED_HOME names the member dir`);
    }
    // An explicit --member wins over BTCFED_HOME; both flags at once is a usage error.
    const explicit = btcfed(['status', '--member', '/srv/nowhere-c'], { ...noHome(), BTCFED_HOME: '/srv/nowhere-b' }, tmp);
    assert.match(explicit.stderr, /\/srv\/nowhere-c\/conf\.yaml not found/);
    const both = btcfed(['status', '--member', '/srv/x', '--home', '/srv/y'], noHome(), tmp);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /^btcfed: option '--home <dir>' cannot be used with option '--member <dir>'/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('btcfed start store --home DIR becomes the store (same pid, the services\' Node flags), answers, and stops cleanly on SIGTERM', { timeout: 120_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-start-'));
  const basePort = await freePortBlock(19_000, 90, { step: 10 });
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const made = btcfed(['init', '--out', tmp, '--members', '1', '--base-port', String(basePort)]);
    assert.equal(made.status, 0, made.stderr);
    child = spawn(BIN, ['start', 'store', '--no-nats'], { env: { ...noHome(), BTCFED_HOME: path.join(tmp, 'm0') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
    const t0 = Date.now();
    while (!out.includes('"msg":"store ready"')) {
      assert.equal(child.exitCode, null, `the store exited: ${out}`);
      assert.ok(Date.now() - t0 < 60_000, `the store was not ready in 60 s: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // bin/btcfed exec'd node, and start exec'd the service: the pid we spawned is the store's.
    const argv = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(argv.slice(1, 1 + NODE_FLAGS.length), [...NODE_FLAGS], argv.join(' '));
    assert.ok(argv.includes(path.join(ROOT, 'services/store/main.ts')), argv.join(' '));
    assert.deepEqual(argv.slice(argv.indexOf('--data-dir'), argv.indexOf('--data-dir') + 2), ['--data-dir', path.join(tmp, 'm0')]);
    assert.ok(argv.includes('--no-nats'));
    assert.match(out, new RegExp(`"listen":"127\\.0\\.0\\.1:${basePort}"`), 'it listens where the member\'s conf.yaml says');
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
    assert.equal(code, 0, `a clean stop: ${out.slice(-500)}`);
    assert.match(out, /"msg":"stopped"/);
  } finally {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('btcfed start runs what each systemd unit runs: the same Node flags, and the same service arguments', async () => {
  const { serviceArgs } = await import('../cli/start.ts');
  for (const [service, dataDir, opts] of [
    ['store', '/var/lib/btcfed/%i', {}], ['gateway', '/var/lib/btcfed/%i', { store: '${BTCFED_STORE}' }],
    ['consensus', '/var/lib/btcfed/%i', { store: '${BTCFED_STORE}' }], ['signer', '/var/lib/btcfed-signer/%i', { initIfPending: true }],
  ] as const) {
    const unit = fs.readFileSync(path.join(import.meta.dirname, '..', 'deploy', 'systemd', `btcfed-${service}@.service`), 'utf8');
    const exec = /^ExecStart=(\S+) (.*)$/m.exec(unit)![2]!.split(' ');
    const main = exec.indexOf(`services/${service}/main.ts`);
    assert.deepEqual(exec.slice(0, main), [...NODE_FLAGS], `btcfed-${service}@: the services' Node flags (libs/service/node-flags.ts)`);
    assert.deepEqual(exec.slice(main + 1).sort(), (await serviceArgs(service, dataDir, opts)).sort(), `btcfed-${service}@: btcfed start ${service}'s arguments`);
  }
});
