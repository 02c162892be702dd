// The release an operator installs: `npm pack` of this tree, installed into an empty prefix by
// scripts/install-release.sh (unpacked, `npm ci --omit=dev` from the tarball's npm-shrinkwrap.json),
// then run from there with the system's Node first on PATH: `btcfed --version` names the version
// and the commit packed into it, and a one-member federation (its four services) runs from the
// installed tree and commits blocks. Everything real: npm (from its cache when it can), the
// tarball, the processes, NATS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VERSION, gitCommit } from '#libs/version/index.ts';
import { freePortBlock } from './support/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
// The system's directories only: the installed release must find its own Node 24, not this one.
const PLAIN_PATH = '/usr/local/bin:/usr/bin:/bin';
// Dev tooling that must not reach a member's host.
// (@types/node is not among them: protobufjs, a runtime dependency, depends on it.)
const DEV_ONLY = ['typescript', '@stryker-mutator', 'fast-check', 'ts-proto', '@bufbuild/buf'];

async function until<T>(what: string, probe: () => T | undefined | false, ms: number): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };

test('a packed release installs into an empty prefix without dev dependencies and runs a member', { timeout: 240_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-release-'));
  const prefix = path.join(tmp, 'opt-btcfed');
  let devnet: ReturnType<typeof spawn> | undefined;
  const pids: number[] = [];
  try {
    // npm pack: the versioned tarball, with the commit and the lock (as npm-shrinkwrap.json) in it.
    const commit = gitCommit(ROOT);
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000,
    })) as { filename: string; files: { path: string }[] }[];
    const tarball = path.join(tmp, packed[0]!.filename);
    assert.equal(packed[0]!.filename, `btcfed-${VERSION}.tgz`);
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ['bin/btcfed', 'cli/main.ts', 'services/store/main.ts', 'services/signer/main.ts', 'services/gateway/main.ts',
      'services/consensus/main.ts', 'proto/btcfed/v1/store.proto', 'libs/version/build.json', 'npm-shrinkwrap.json',
      'deploy/systemd/btcfed-signer@.service', 'docs/deployment.md', 'CHANGELOG.md', 'scripts/install-release.sh']) {
      assert.ok(files.includes(f), `the tarball carries ${f}`);
    }
    const stray = files.filter((f) => /\.test\.ts$|^test\/|^bench\/|^stryker\/|^\.devnet|test-?kit\.ts$|\/testdata\//.test(f));
    assert.deepEqual(stray, [], 'no tests, benches, mutation set-up or devnet files in the tarball');
    assert.ok(!fs.existsSync(path.join(ROOT, 'libs/version/build.json')) && !fs.existsSync(path.join(ROOT, 'npm-shrinkwrap.json')),
      'postpack took build.json and npm-shrinkwrap.json out of the checkout again');

    // Into an empty prefix, without dev dependencies.
    const install = spawnSync('bash', [path.join(ROOT, 'scripts/install-release.sh'), tarball, prefix],
      { cwd: tmp, encoding: 'utf8', env: { ...process.env, PATH: PLAIN_PATH }, timeout: 150_000 });
    assert.equal(install.status, 0, `install-release.sh: ${install.stdout}\n${install.stderr}`);
    const home = path.join(prefix, 'current');
    assert.equal(fs.readlinkSync(home), `releases/${VERSION}`);
    const modules = fs.readdirSync(path.join(home, 'node_modules'));
    for (const dev of DEV_ONLY) {
      const [scope, name] = dev.split('/');
      const there = name ? modules.includes(scope!) && fs.existsSync(path.join(home, 'node_modules', scope!, name)) : modules.includes(dev);
      assert.ok(!there, `dev dependency ${dev} is not installed`);
    }
    const node = path.join(home, 'node_modules/node/bin/node');
    assert.match(execFileSync(node, ['--version'], { encoding: 'utf8' }), /^v24\./, 'Node 24 comes with the release');

    // --version from the installed tree: version and the commit it was packed from, no git asked.
    const btcfed = path.join(home, 'bin/btcfed');
    const env = { ...process.env, PATH: PLAIN_PATH };
    const v = spawnSync(btcfed, ['--version'], { encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^${VERSION.replaceAll('.', '\\.')} \\(commit ${commit ? commit.commit.slice(0, 12) : 'unknown'}(-dirty)?\\)\\n$`));
    const sv = spawnSync(node, [path.join(home, 'services/signer/main.ts'), '--version'], { encoding: 'utf8', env, timeout: 30_000 });
    assert.equal(sv.stdout, v.stdout, 'the services print the same version line');

    // A one-member federation from the installed tree: four services, blocks committed.
    const dir = path.join(tmp, 'net');
    const basePort = await freePortBlock(18_000, 10);
    devnet = spawn(btcfed, ['devnet', '--members', '1', '--dir', dir, '--base-port', String(basePort), '--nats', NATS_URL],
      { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    devnet.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    devnet.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
    await until('the federation to be up', () => out.includes('federation is up') || devnet!.exitCode !== null, 90_000);
    assert.match(out, /federation is up/, out);
    const services = ['store', 'signer', 'gateway', 'consensus'];
    for (const s of services) pids.push(Number(fs.readFileSync(path.join(dir, 'm0/run', `${s}.pid`), 'utf8')));
    for (const [i, s] of services.entries()) {
      const pid = pids[i]!;
      assert.equal(fs.readlinkSync(`/proc/${pid}/exe`), fs.realpathSync(node), `${s} runs on the release's Node 24`);
      assert.equal(fs.readlinkSync(`/proc/${pid}/cwd`), fs.realpathSync(home), `${s} runs from the installed tree`);
      assert.ok(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(`services/${s}/main.ts`), `${s} runs services/${s}/main.ts`);
    }
    // A transaction submitted to it is committed (submit waits for the commit; exit 0).
    const submitted = spawnSync(btcfed, ['submit', '--member', path.join(dir, 'm0'), 'release-test'], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(submitted.status, 0, `submit: ${submitted.stdout}${submitted.stderr}`);
    assert.match(submitted.stdout, /committed at height \d+/);
    const st = spawnSync(btcfed, ['status', '--member', path.join(dir, 'm0')], { encoding: 'utf8', env, timeout: 20_000 });
    assert.equal(st.status, 0, st.stderr);
    assert.ok(Number((JSON.parse(st.stdout) as { committedHeight: string }).committedHeight) > 0, st.stdout);

    devnet.kill('SIGINT');
    await until('the devnet to stop', () => devnet!.exitCode !== null, 30_000);
    await until('its services to stop', () => pids.every((p) => !alive(p)), 20_000);
  } finally {
    if (devnet && devnet.exitCode === null) devnet.kill('SIGKILL');
    for (const s of ['store', 'signer', 'gateway', 'consensus']) {
      try { pids.push(Number(fs.readFileSync(path.join(tmp, 'net/m0/run', `${s}.pid`), 'utf8'))); } catch { /* never started */ }
    }
    for (const p of pids) if (p > 0 && alive(p)) process.kill(p, 'SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
