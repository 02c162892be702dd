// A signer behind a path that drops packets (a firewall change, a cut between the consensus and
// signer hosts): the TCP connect the channel makes meanwhile hangs on the kernel's SYN
// retransmissions, and grpc-js makes no other attempt while it does. The remote signer gives a
// connection attempt up after connectTimeoutMs and dials on a new channel, so signing resumes
// within about that long after the path heals — not at the stuck attempt's next retransmission.
// Real gRPC with mutual TLS on loopback, the cut made with iptables (root only; skipped elsewhere).
// A redial whose TLS files cannot be read must not end the process (no iptables needed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Phase } from '#libs/hotstuff/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import { makeSignerWorld } from '../services/signer/testkit.ts';
import { serveOverGrpc } from './support/signer.ts';
import { writeTestPki } from '../libs/rpc/testdata/echo.ts';

function iptablesMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (iptables)';
  try { execFileSync('iptables', ['-S', 'INPUT'], { stdio: 'ignore' }); return undefined; } catch { return 'iptables is not usable here'; }
}

test('a connection attempt stuck behind dropped packets is given up: signing resumes within about a second of the heal', { skip: iptablesMissing(), timeout: 90_000 }, async () => {
  const world = await makeSignerWorld({ tls: true });
  const g = await serveOverGrpc(world, true);
  const tls = world.tls!;
  const redials: number[] = [];
  const remote = createRemoteSigner({
    address: `127.0.0.1:${g.port}`, validatorCount: world.n, deadlineMs: 1000, connectTimeoutMs: 1000,
    security: { mode: 'mtls', caFile: tls.caFile, certFile: tls.clientCert, keyFile: tls.clientKey, serverName: 'localhost' },
    onRedial: (ms) => redials.push(ms),
  });
  const rule = ['INPUT', '-i', 'lo', '-p', 'tcp', '--dport', String(g.port), '-j', 'DROP'];
  const vote = (view: number) => {
    const b = world.block(view, world.genesis);
    return { kind: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view, blockHash: b.hash, header: b.header, justify: world.gqc };
  };
  let cut = false;
  try {
    await remote.ready();
    assert.ok((await remote.sign(vote(1))).signature.length > 0);

    execFileSync('iptables', ['-I', ...rule]);
    cut = true;
    // Keepalive finds the open connection dead within 2–4 s; the next call (consensus keeps asking:
    // here one every second) makes the channel dial into the cut. Without the redial, signing after
    // the heal waits for that attempt's next SYN retransmission: 1.2–3.3 s in runs of this test,
    // up to 16 s in general; the redial is what this test can see fail.
    const trying = setInterval(() => { remote.sign(vote(2)).catch(() => undefined); }, 1000);
    await new Promise((r) => setTimeout(r, 14_000));
    clearInterval(trying);
    assert.ok(redials.length > 0, 'a connection attempt behind the cut was given up');
    execFileSync('iptables', ['-D', ...rule]);
    cut = false;

    const healed = Date.now();
    for (;;) {
      try {
        assert.ok((await remote.sign(vote(2))).signature.length > 0);
        break;
      } catch (err) {
        if (Date.now() - healed > 30_000) throw err;
      }
    }
    const recoveryMs = Date.now() - healed;
    assert.ok(recoveryMs < 2500, `signing resumed ${recoveryMs} ms after the heal (redials: ${redials.join(', ')} ms)`);
  } finally {
    if (cut) execFileSync('iptables', ['-D', ...rule]);
    await remote.close();
    await g.client.close();
    await g.server.shutdown({ graceMs: 500 });
    await g.local.close();
    await world.cleanup();
  }
});

test('a redial whose TLS files cannot be read keeps the hung attempt, says why, and does not end the process', { timeout: 30_000 }, async () => {
  // A server that takes the TCP connection and never answers the TLS handshake: the channel stays
  // CONNECTING, as behind dropped packets, with no iptables needed.
  const held: net.Socket[] = [];
  const silent = net.createServer((s) => { held.push(s); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as net.AddressInfo).port;
  const pki = await writeTestPki();
  const keep = fs.mkdtempSync(path.join(os.tmpdir(), 'btcfed-redial-'));
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => { crashes.push(err); };
  process.on('uncaughtException', onCrash);
  const redials: number[] = [];
  const failed: unknown[] = [];
  const remote = createRemoteSigner({
    address: `127.0.0.1:${port}`, validatorCount: 4, deadlineMs: 500, connectTimeoutMs: 300,
    security: { mode: 'mtls', caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey, serverName: 'localhost' },
    onRedial: (ms) => redials.push(ms), onRedialFailed: (err) => failed.push(err),
  });
  try {
    // The files go (an operator moved them) before the first attempt is given up.
    for (const f of [pki.caFile, pki.clientCert, pki.clientKey]) fs.renameSync(f, path.join(keep, path.basename(f)));
    remote.client.getChannel().getConnectivityState(true);
    const until = Date.now() + 5_000;
    while (failed.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.ok(failed.length >= 2, `the redial failed and was tried again (${failed.length} failures)`);
    assert.match(String((failed[0] as Error).message), /cannot be read/);
    assert.equal(redials.length, 0, 'no new channel was made without its files');
    // Back: the next attempt makes a new channel.
    for (const f of [pki.caFile, pki.clientCert, pki.clientKey]) fs.renameSync(path.join(keep, path.basename(f)), f);
    const until2 = Date.now() + 5_000;
    while (redials.length === 0 && Date.now() < until2) await new Promise((r) => setTimeout(r, 100));
    assert.ok(redials.length > 0, 'a new channel dialled once the files were back');
    assert.deepEqual(crashes.map((e) => (e instanceof Error ? e.message : String(e))), []);
  } finally {
    process.off('uncaughtException', onCrash);
    await remote.close();
    for (const s of held) s.destroy();
    silent.close();
    pki.cleanup();
    fs.rmSync(keep, { recursive: true, force: true });
  }
});
