// The signer as a real process: the CLI (keygen, verify-journal, export-state, import-state),
// every start-up refusal (no state without --init, truncated/corrupt state, a key others can
// read, --init after signing, no TLS), mutual TLS (no certificate, a foreign CA, the allow
// list) and refusals published on NATS.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { certificateFingerprint, call, createClient, type ClientSecurity } from '#libs/rpc/index.ts';
import { SignerServiceClient } from '#libs/gen/btcfed/v1/signer.pb.ts';
import { SignerRefused } from '#libs/gen/btcfed/v1/events.pb.ts';
import { Phase } from '#libs/hotstuff/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import { refused } from '../services/signer/contract.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { markFreshSigner } from '../services/signer/fresh.ts';
import { NATS_URL, recordEvents } from './support/store.ts';
import { expectStartRefused, signerCli, startSignerProcess } from './support/signer.ts';

const mtls = (w: SignerWorld, cert = w.tls!.clientCert, key = w.tls!.clientKey): ClientSecurity =>
  ({ mode: 'mtls', caFile: w.tls!.caFile, certFile: cert, keyFile: key, serverName: 'localhost' });
const remote = (w: SignerWorld, port: number, security = mtls(w)) =>
  createRemoteSigner({ address: `127.0.0.1:${port}`, security, validatorCount: w.n, deadlineMs: 5000 });
const prepare = (w: SignerWorld, view: number, salt = 0) => {
  const b = w.block(view, w.genesis, { salt });
  return { kind: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view, blockHash: b.hash, header: b.header, justify: w.gqc };
};

describe('signer CLI: keygen', () => {
  test('writes an encrypted 0600 key, prints its public key, and never replaces it', async () => {
    const w = await makeSignerWorld();
    try {
      await fs.rm(path.join(w.dir, 'signer.key'));
      await w.writeConf({ validators: [], key_file: 'new.key' });
      const r = signerCli(['keygen', '--data-dir', w.dir]);
      assert.equal(r.status, 0, r.stderr);
      const hex = r.stdout.trim();
      assert.match(hex, /^[0-9a-f]{64}$/);
      assert.match(r.stderr, new RegExp(`public_key: ${hex}`));
      const file = path.join(w.dir, 'new.key');
      assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
      assert.equal(JSON.parse(await fs.readFile(file, 'utf8')).publicKey, hex);
      const again = signerCli(['keygen', '--data-dir', w.dir]);
      assert.equal(again.status, 1);
      assert.match(again.stdout + again.stderr, /SIGNER_KEY_EXISTS|already exists/);
      assert.equal(JSON.parse(await fs.readFile(file, 'utf8')).publicKey, hex, 'the first key is untouched');
      const bad = signerCli(['keygen', '--data-dir', w.dir, '--force']);
      assert.equal(bad.status, 1, 'unknown flags are errors');
    } finally {
      await w.cleanup();
    }
  });
});

describe('signer start-up refusals', () => {
  let w: SignerWorld;
  before(async () => { w = await makeSignerWorld({ tls: true }); });
  after(() => w.cleanup());

  test('a key without a state file needs --init; then it starts', async () => {
    const r = await expectStartRefused(w.dir);
    assert.equal(r.code, 1);
    assert.equal(r.fatal.code, 'SIGNER_STATE_MISSING');
    assert.match(String(r.fatal.msg), /--init/);
    const { svc } = await startSignerProcess(w.dir, ['--init', '--no-nats']);
    assert.equal(await svc.stop(), 0);
    await fs.access(path.join(w.dir, 'safety-state.json'));
  });

  test('truncated and corrupt state files are refused with the reason, and left untouched', async () => {
    const file = path.join(w.dir, 'safety-state.json');
    const good = await fs.readFile(file, 'utf8');
    for (const [bad, why] of [[good.slice(0, good.length >> 1), /not valid JSON/], [good.replace('"lastNewView":0', '"lastNewView":1'), /checksum/], ['', /not valid JSON/]] as const) {
      await fs.writeFile(file, bad);
      const r = await expectStartRefused(w.dir, ['--init']);
      assert.equal(r.code, 1);
      assert.equal(r.fatal.code, 'SIGNER_STATE_CORRUPT');
      assert.match(String(r.fatal.msg), why);
      assert.equal(await fs.readFile(file, 'utf8'), bad, 'never reset or repaired');
    }
    await fs.writeFile(file, good);
  });

  test('a key file others can read is refused', async () => {
    const key = path.join(w.dir, 'signer.key');
    await fs.chmod(key, 0o644);
    try {
      const r = await expectStartRefused(w.dir);
      assert.equal(r.fatal.code, 'SIGNER_KEY_PERMISSIONS');
      assert.match(String(r.fatal.msg), /chmod 600/);
    } finally {
      await fs.chmod(key, 0o600);
    }
  });

  test('a safety state, journal or epoch history others can read, or a data dir others can write, is refused', async () => {
    for (const name of ['safety-state.json', 'journal.jsonl', 'epochs.json']) {
      const file = path.join(w.dir, name);
      // No epoch has ended in this world, so there is no epoch history yet: one is made for the check
      // (its permissions are refused before its contents are read) and removed after it.
      const made = await fs.writeFile(file, '{}', { flag: 'wx', mode: 0o600 }).then(() => true, () => false);
      await fs.chmod(file, 0o644);
      try {
        const r = await expectStartRefused(w.dir);
        assert.equal(r.fatal.code, 'SIGNER_STATE_PERMISSIONS', name);
        assert.match(String(r.fatal.msg), new RegExp(`chmod 600 .*${name}`));
      } finally {
        if (made) await fs.rm(file);
        else await fs.chmod(file, 0o600);
      }
    }
    await fs.chmod(w.dir, 0o777);
    try {
      const r = await expectStartRefused(w.dir);
      assert.equal(r.fatal.code, 'SIGNER_DIR_PERMISSIONS');
      assert.match(String(r.fatal.msg), /chmod 700/);
    } finally {
      await fs.chmod(w.dir, 0o700);
    }
  });

  test('--init-if-pending creates the state only while member init\'s marker is there, and uses it up', async () => {
    const fresh = await makeSignerWorld({ tls: true });
    try {
      assert.equal((await expectStartRefused(fresh.dir, ['--init-if-pending'])).fatal.code, 'SIGNER_STATE_MISSING', 'no marker: no --init');
      await markFreshSigner(fresh.dir);
      const { svc } = await startSignerProcess(fresh.dir, ['--init-if-pending', '--no-nats']);
      assert.equal(await svc.stop(), 0);
      await fs.access(path.join(fresh.dir, 'safety-state.json'));
      await assert.rejects(fs.access(path.join(fresh.dir, 'init-pending')), 'the marker is used up');
      await fs.rm(path.join(fresh.dir, 'safety-state.json'));
      assert.equal((await expectStartRefused(fresh.dir, ['--init-if-pending'])).fatal.code, 'SIGNER_STATE_MISSING', 'a lost state later is not re-created');
    } finally {
      await fresh.cleanup();
    }
  });

  test('without tls the signer refuses unless --insecure, and --insecure only on loopback', async () => {
    await w.writeConf({ tls: undefined });
    try {
      assert.equal((await expectStartRefused(w.dir)).fatal.code, 'SIGNER_TLS_REQUIRED');
      const r = await expectStartRefused(w.dir, ['--insecure', '--listen', '0.0.0.0:0']);
      assert.equal(r.fatal.code, 'RPC_INSECURE_NON_LOOPBACK');
    } finally {
      await w.writeConf();
    }
  });

  test('--init after the state was lost is refused when the journal shows signatures', async () => {
    const { svc, port } = await startSignerProcess(w.dir, ['--no-nats']);
    const s = remote(w, port);
    await s.sign(prepare(w, 1));
    await s.close();
    await svc.stop();
    const file = path.join(w.dir, 'safety-state.json');
    const kept = await fs.readFile(file, 'utf8');
    await fs.rm(file);
    const r = await expectStartRefused(w.dir, ['--init']);
    assert.equal(r.fatal.code, 'SIGNER_INIT_REFUSED');
    await fs.writeFile(file, kept, { mode: 0o600 });
  });
});

describe('signer over mutual TLS', () => {
  let w: SignerWorld;
  let stop: () => Promise<unknown>;
  let port: number;
  before(async () => {
    w = await makeSignerWorld({ tls: true });
    await w.writeConf({ nats: { url: NATS_URL } });
    const p = await startSignerProcess(w.dir, ['--init']);
    port = p.port;
    stop = () => p.svc.stop();
    await p.svc.waitFor((l) => l.msg === 'nats connected', 10_000);
  });
  after(async () => {
    await stop();
    await w.cleanup();
  });

  test('a client without a certificate, or with one from another CA, is rejected', async () => {
    const noCert = createClient(SignerServiceClient, `127.0.0.1:${port}`, { security: { mode: 'tls', caFile: w.tls!.caFile, serverName: 'localhost' } });
    await assert.rejects(call(noCert.getPublicKey.bind(noCert), {}, { deadlineMs: 3000 }), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
    noCert.close();
    const foreign = remote(w, port, mtls(w, w.tls!.otherClientCert, w.tls!.otherClientKey));
    await assert.rejects(foreign.identity(), (e: Error & { details: Record<string, unknown> }) => e.details.grpcCode === grpc.status.UNAVAILABLE);
    await foreign.close();
    const ok = remote(w, port);
    assert.equal((await ok.identity()).validatorIndex, w.self);
    await ok.close();
  });

  test('a refusal is FAILED_PRECONDITION naming the rule, journaled, and published on NATS', async () => {
    const rec = await recordEvents(`btcfed.${'m' + w.self}.signer.signer.refused`, (b) => SignerRefused.decode(b));
    const s = remote(w, port);
    try {
      await s.sign(prepare(w, 5));
      const raw = s.client;
      const r = prepare(w, 5, 1);
      const err = await call(raw.signVote.bind(raw), {
        epoch: 0, phase: r.phase, view: r.view, blockHash: r.blockHash, header: r.header,
        justify: { phase: 1, view: 0, blockHash: w.genesis.hash, signers: new Uint8Array(0), signatures: [] }, prepareQc: undefined, precommitQc: undefined,
      }).catch((e: grpc.ServiceError) => e);
      assert.equal((err as grpc.ServiceError).code, grpc.status.FAILED_PRECONDITION);
      assert.match((err as grpc.ServiceError).details, /^rule=one-per-slot: /);
      const ev = await rec.next((e) => e.data.rule === 'one-per-slot');
      assert.equal(ev.data.view, 5);
      assert.equal(ev.data.requestType, 'vote');
      await refused(s.sign({ kind: 'new-view', epoch: 0, view: 1, highQC: { ...w.gqc, view: 3 } }), 'high-qc');
      await rec.next((e) => e.data.rule === 'high-qc');
      const journal = await fs.readFile(path.join(w.dir, 'journal.jsonl'), 'utf8');
      assert.match(journal, /"decision":"refused","rule":"one-per-slot"/);
      assert.match(journal, /"decision":"signed"/);
    } finally {
      await s.close();
      await rec.close();
    }
  });
});

describe('signer allow list, journal verification, export and import', () => {
  test('allowed_clients, verify-journal, and moving the state to a new host', async () => {
    const w = await makeSignerWorld({ tls: true });
    const moved = await makeSignerWorld({ tls: true });
    try {
      await w.writeConf({ allowed_clients: ['00'.repeat(32)] });
      let p = await startSignerProcess(w.dir, ['--init', '--no-nats']);
      const s = remote(w, p.port);
      await assert.rejects(s.identity(), (e: Error & { details: Record<string, unknown> }) => e.details.grpcCode === grpc.status.PERMISSION_DENIED);
      await s.close();
      await p.svc.stop();
      await w.writeConf({ allowed_clients: [certificateFingerprint(await fs.readFile(w.tls!.clientCert))] });
      p = await startSignerProcess(w.dir, ['--no-nats']);
      const s2 = remote(w, p.port);
      const sig = await s2.sign(prepare(w, 3));
      await s2.close();

      const busy = signerCli(['import-state', path.join(w.dir, 'safety-state.json'), '--data-dir', w.dir]);
      assert.equal(busy.status, 1);
      assert.match(busy.stderr + busy.stdout, /SIGNER_RUNNING|running/);
      await p.svc.stop();

      const v = signerCli(['verify-journal', '--data-dir', w.dir]);
      assert.equal(v.status, 0, v.stdout + v.stderr);
      assert.match(v.stdout, /^ok: .* entries/);

      const out = path.join(w.dir, 'export.json');
      assert.equal(signerCli(['export-state', '--data-dir', w.dir, '--out', out]).status, 0);
      // The new host: the same key and signer.yaml, no state yet.
      await fs.copyFile(path.join(w.dir, 'signer.key'), path.join(moved.dir, 'signer.key'));
      await fs.writeFile(path.join(moved.dir, 'signer.yaml'), stringify((await import('yaml')).parse(await fs.readFile(path.join(w.dir, 'signer.yaml'), 'utf8'))));
      for (const f of ['ca.pem', 'server.pem', 'server-key.pem']) await fs.copyFile(path.join(w.dir, f), path.join(moved.dir, f));
      const imp = signerCli(['import-state', out, '--data-dir', moved.dir]);
      assert.equal(imp.status, 0, imp.stderr);
      assert.match(imp.stdout, /^merged: epoch 0 \(history of 0 ended epochs\), last vote view 3/);
      const behind = JSON.parse(await fs.readFile(out, 'utf8'));
      assert.equal(signerCli(['import-state', out, '--data-dir', moved.dir]).status, 0, 'the same state again is a no-op');
      assert.equal(behind.state.lastVote.view, 3);

      p = await startSignerProcess(moved.dir, ['--no-nats']);
      const s3 = remote(w, p.port);
      const again = await s3.sign(prepare(w, 3));
      assert.equal(again.replayed, true, 'the moved signer remembers the slot');
      assert.deepEqual(again.signature, sig.signature);
      await refused(s3.sign(prepare(w, 3, 1)), 'one-per-slot');
      await s3.close();
      await p.svc.stop();

      const journal = path.join(w.dir, 'journal.jsonl');
      const text = await fs.readFile(journal, 'utf8');
      // Edit an early line: every later line's prev no longer matches (the head itself is anchored
      // by the next start line, or externally by the head hash verify-journal prints).
      await fs.writeFile(journal, text.replace('"type":"init"', '"type":"inix"'));
      const broken = signerCli(['verify-journal', '--data-dir', w.dir]);
      assert.equal(broken.status, 1);
      assert.match(broken.stdout, /^broken: .* line \d+/);
    } finally {
      await w.cleanup();
      await moved.cleanup();
    }
  });
});
