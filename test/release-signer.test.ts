// A signer host installs only what the signer needs: `install-release.sh --signer` of the packed
// tree leaves out the packages only the member's other services load (the tarball's
// signer-omit.txt: libp2p and its transports, LMDB), and from that install `btcfed` makes a member
// and `btcfed start signer` runs its signer until SIGTERM. Real npm, tarball and processes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePortBlock } from './support/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const PLAIN_PATH = '/usr/local/bin:/usr/bin:/bin';
/** Loaded by the gateway and consensus only. */
const MEMBER_ONLY = ['libp2p', '@libp2p/tcp', '@chainsafe/libp2p-noise', '@chainsafe/libp2p-yamux', 'lmdb'];

test('a signer host\'s install has no libp2p node and no LMDB, and runs the signer', { timeout: 240_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-release-signer-'));
  let signer: ReturnType<typeof spawn> | undefined;
  try {
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000,
    })) as { filename: string; files: { path: string }[] }[];
    assert.ok(packed[0]!.files.some((f) => f.path === 'signer-omit.txt'), 'the tarball says what a signer host does without');
    const prefix = path.join(tmp, 'opt-btcfed');
    const env = { ...process.env, PATH: PLAIN_PATH };
    const install = spawnSync('bash', [path.join(ROOT, 'scripts/install-release.sh'), '--signer', path.join(tmp, packed[0]!.filename), prefix],
      { cwd: tmp, encoding: 'utf8', env, timeout: 150_000 });
    assert.equal(install.status, 0, `install-release.sh --signer: ${install.stdout}\n${install.stderr}`);
    assert.match(install.stdout, /for a signer host/);
    const home = path.join(prefix, 'current');
    for (const p of MEMBER_ONLY) assert.ok(!fs.existsSync(path.join(home, 'node_modules', p)), `${p} is not on a signer host`);
    for (const p of ['@grpc/grpc-js', '@noble/post-quantum', 'node']) assert.ok(fs.existsSync(path.join(home, 'node_modules', p)), `${p} is`);

    // From that install: a member (its signer dir), and its signer started, ready, stopped.
    const btcfed = path.join(home, 'bin/btcfed');
    const basePort = await freePortBlock(16_000, 90, { step: 10 });
    const made = spawnSync(btcfed, ['init', '--out', path.join(tmp, 'fed'), '--members', '1', '--base-port', String(basePort)], { encoding: 'utf8', env, timeout: 60_000 });
    assert.equal(made.status, 0, made.stderr);
    signer = spawn(btcfed, ['start', 'signer', '--init', '--no-nats', '--home', path.join(tmp, 'fed/m0/signer')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    signer.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    signer.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
    const t0 = Date.now();
    while (!out.includes('"msg":"signer ready"')) {
      assert.equal(signer.exitCode, null, `the signer exited: ${out}`);
      assert.ok(Date.now() - t0 < 60_000, `the signer was not ready in 60 s: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(fs.readlinkSync(`/proc/${signer.pid}/exe`), fs.realpathSync(path.join(home, 'node_modules/node/bin/node')), 'on the release\'s Node 24');
    signer.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => signer!.once('exit', (c) => r(c)));
    assert.equal(code, 0, out.slice(-500));
  } finally {
    if (signer && signer.exitCode === null) signer.kill('SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
