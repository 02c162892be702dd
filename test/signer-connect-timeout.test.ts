// A signer behind a path that drops packets (a firewall change, a cut between the consensus and
// signer hosts): the TCP connect the channel makes meanwhile hangs on the kernel's SYN
// retransmissions, and grpc-js makes no other attempt while it does. The remote signer gives a
// connection attempt up after connectTimeoutMs and dials on a new channel, so signing resumes
// within about that long after the path heals — not at the stuck attempt's next retransmission.
// Real gRPC with mutual TLS on loopback, the cut made with iptables (root only; skipped elsewhere).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Phase } from '#libs/hotstuff/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import { makeSignerWorld } from '../services/signer/testkit.ts';
import { serveOverGrpc } from './support/signer.ts';

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
