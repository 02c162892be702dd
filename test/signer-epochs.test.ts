// The signer across epochs (docs/signer.md, docs/reconfiguration.md): it signs for the newest epoch
// it has been shown the proof of and for no other; the proof is checked against the ending epoch's
// keys before it is believed; the next epoch's marks start afresh, locked on the block that ended
// the epoch; a key rotated out signs nothing more, and a key rotated in signs nothing before the
// epoch that seats it. What it learns survives restarts, and a history that is lost or edited
// stops it from starting. Real signer processes, real mTLS gRPC, real SLH-DSA, real files.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { newViewSigningBytes } from '#libs/crypto/index.ts';
import { Phase, genesisQC, type Block, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import type { Reconfiguration } from '#libs/validators/index.ts';
import { readJournal } from '../services/signer/journal.ts';
import { sealKey } from '../services/signer/keyfile.ts';
import { TEST_KDF, TEST_PASSPHRASE, epochChild, epochProof, epochQc, makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import type { RemoteSigner } from '../services/signer/client.ts';
import { expectStartRefused, mtlsSignerClient, signerCli, startSignerProcess } from './support/signer.ts';

let w: SignerWorld;
before(async () => { w = await makeSignerWorld({ tls: true }); });
after(() => w.cleanup());

type Err = Error & { details?: Record<string, unknown> };
const rule = (name: string, pattern?: RegExp) => (e: Err) => e.details?.rule === name && (!pattern || pattern.test(e.message));

const child = (parent: Block, view: number, txs: Uint8Array[], epoch: number) => epochChild(w, parent, view, txs, epoch);
const qcOf = (phase: Phase, b: Block, signers: number[], keyOf: (i: number) => Uint8Array, epoch?: number) => epochQc(w, phase, b, signers, keyOf, epoch);
const proofOf = (parent: Block, change: Reconfiguration, approvers: number[], signers: number[], keyOf: (i: number) => Uint8Array) => epochProof(w, parent, change, approvers, signers, keyOf);

const newView = (epoch: number, view: number, highQC: QuorumCert): SignRequest => ({ kind: 'new-view', epoch, view, highQC });

test('a signer follows the epochs it is shown the proofs of: signs only for the newest, starts it afresh, and stops for good when its key is rotated out', async () => {
  const joiner = w.slh.generateKeyPair();
  const rotated = w.slh.generateKeyPair();
  const peers = (parse(await fs.readFile(path.join(w.dir, 'signer.yaml'), 'utf8')) as { validators: Array<{ peer_id: string }> }).validators.map((v) => v.peer_id);
  // Epoch 1 seats m0..m3 and the joiner (index 4); epoch 2 gives m1 (this signer) a new key.
  const epoch1Key = (i: number) => (i < 4 ? w.keys[i]! : joiner).secretKey;
  const add: Reconfiguration = { chainId: w.chainId, epoch: 0, ops: [{ kind: 'add', name: 'm4', peerId: 'peer-joiner', publicKey: joiner.publicKey }] };
  const proof1 = await proofOf(w.genesis, add, [0, 1, 2], [0, 2, 3], (i) => w.keys[i]!.secretKey);
  const rotate: Reconfiguration = { chainId: w.chainId, epoch: 1, ops: [{ kind: 'rotate', name: 'm1', peerId: peers[1]!, publicKey: rotated.publicKey }] };
  const proof2 = await proofOf(proof1.last, rotate, [0, 2, 3, 4], [0, 2, 3, 4], epoch1Key);
  const root1 = genesisQC(proof1.last);

  const { svc, port } = await startSignerProcess(w.dir, ['--init', '--no-nats']);
  let s: RemoteSigner = mtlsSignerClient(w, port, w.tls!.clientCert, w.tls!.clientKey);
  let stop = () => svc.stop();
  try {
    assert.deepEqual(await pick(s), { epoch: 0, seated: true, validatorIndex: 1, validatorCount: 4 });
    await s.sign(newView(0, 1, w.gqc));

    // Refused proofs change nothing, and each says what failed.
    await assert.rejects(s.advanceEpoch({ ...proof1, qc: await qcOf(Phase.COMMIT, proof1.last, [0, 2], (i) => w.keys[i]!.secretKey) }), rule('epoch-proof', /qc: 2 signers < quorum 3/));
    await assert.rejects(s.advanceEpoch({ ...proof1, qc: await qcOf(Phase.COMMIT, proof1.last, [0, 2, 3], (i) => w.keys[i]!.secretKey, 1) }), rule('epoch-proof', /bad signature/),
      'votes signed as another epoch\'s are not a QC of this one');
    await assert.rejects(s.advanceEpoch(proof2), rule('epoch-proof', /ends epoch 1, this signer knows epochs up to 0/));
    assert.equal((await s.identity()).epoch, 0);
    await s.sign(newView(0, 2, w.gqc)); // still signing for epoch 0

    // The proof of epoch 0's end: epoch 1, five validators, this signer still validator 1.
    assert.deepEqual(await s.advanceEpoch(proof1), { epoch: 1, already: false, seated: true, validatorIndex: 1, validatorCount: 5 });
    assert.deepEqual(await s.advanceEpoch(proof1), { epoch: 1, already: true, seated: true, validatorIndex: 1, validatorCount: 5 }, 'shown again: nothing changes');
    await assert.rejects(s.sign(newView(0, 3, w.gqc)), rule('epoch', /epoch 0 is not this signer's epoch 1/), 'nothing of an ended epoch is signed');
    // Views restart at 1 and the lock is on the block that ended epoch 0 (its root QC has no signatures).
    const nv = await s.sign(newView(1, 1, root1));
    const b1 = child(proof1.last, 1, [], 1);
    await s.sign({ kind: 'vote', epoch: 1, phase: Phase.PREPARE, view: 1, blockHash: b1.hash, header: b1.header, justify: root1 });
    await assert.rejects(s.sign(newView(1, 2, w.gqc)), rule('high-qc'), 'genesis\'s root QC is not epoch 1\'s');
    await s.close();
    await stop();

    // Restarted: still epoch 1, and the new-view of epoch 1 view 1 is the one it signed.
    const again = await startSignerProcess(w.dir, ['--no-nats']);
    s = mtlsSignerClient(w, again.port, w.tls!.clientCert, w.tls!.clientKey);
    stop = () => again.svc.stop();
    assert.deepEqual(await pick(s), { epoch: 1, seated: true, validatorIndex: 1, validatorCount: 5 });
    assert.deepEqual((await s.sign(newView(1, 1, root1))).signature, nv.signature, 'the epoch-1 marks survived the restart');
    await fs.copyFile(path.join(w.dir, 'safety-state.json'), path.join(w.dir, 'state-epoch1.json'));

    // Epoch 1 ends with m1's key rotated out: this signer signs nothing more, for any epoch.
    assert.deepEqual(await s.advanceEpoch(proof2), { epoch: 2, already: false, seated: false, validatorIndex: 0, validatorCount: 5 });
    assert.deepEqual(await pick(s), { epoch: 2, seated: false, validatorIndex: 0, validatorCount: 5 });
    await assert.rejects(s.sign(newView(2, 1, genesisQC(proof2.last))), rule('epoch', /not in the validator set of epoch 2/));
    await assert.rejects(s.sign(newView(1, 2, root1)), rule('epoch'));
  } finally {
    await s.close();
    await stop();
  }

  const epochs = [];
  for await (const { entry } of readJournal(path.join(w.dir, 'journal.jsonl'))) if (entry.type === 'epoch') epochs.push([entry.decision, entry.epoch, entry.rule ?? null]);
  assert.deepEqual(epochs, [['refused', 0, 'epoch-proof'], ['refused', 0, 'epoch-proof'], ['refused', 0, 'epoch-proof'], ['advanced', 1, null], ['advanced', 2, null]], 'every epoch decision is journaled');

  // A rotated-out key does not start unless told to stand by, and then refuses everything.
  const refused = await expectStartRefused(w.dir);
  assert.match(String(refused.fatal.msg), /not in the validator set of epoch 2.*rotated out/);
  // A crash between saving the proof and the next epoch's marks (here: the epoch-1 state put
  // back): the state is moved on to the newest epoch at start.
  await fs.copyFile(path.join(w.dir, 'state-epoch1.json'), path.join(w.dir, 'safety-state.json'));
  await w.writeConf({ standby: true });
  const standby = await startSignerProcess(w.dir, ['--no-nats']);
  const t = mtlsSignerClient(w, standby.port, w.tls!.clientCert, w.tls!.clientKey);
  try {
    assert.deepEqual(await pick(t), { epoch: 2, seated: false, validatorIndex: 0, validatorCount: 5 });
    assert.ok(standby.svc.lines.some((l) => /moved on to the newest epoch/.test(String(l.msg))));
    await assert.rejects(t.sign(newView(1, 5, root1)), rule('epoch'));
  } finally {
    await t.close();
    await standby.svc.stop();
  }

  // The history and the state move together: without the history, or with it edited, no start.
  const history = path.join(w.dir, 'epochs.json');
  const text = await fs.readFile(history, 'utf8');
  await fs.rm(history);
  assert.match(String((await expectStartRefused(w.dir)).fatal.msg), /state .* is of epoch 2, but the epoch history .* reaches epoch 0/);
  await fs.writeFile(history, text.replace(/"height": 1/, '"height": 2'), { mode: 0o600 });
  assert.match(String((await expectStartRefused(w.dir)).fatal.msg), /epoch history .* cannot be trusted: checksum mismatch/);
  await fs.writeFile(history, text);

  // Moving the signer to another host: the export carries the history with the state, checked
  // again from genesis on import; an export whose history was edited, or a state without its
  // history, is refused and nothing is written.
  const out = path.join(w.dir, 'export.json');
  const exported = signerCli(['export-state', '--data-dir', w.dir, '--out', out]);
  assert.equal(exported.status, 0, exported.stderr);
  const doc = JSON.parse(await fs.readFile(out, 'utf8')) as { epochs: { ended: unknown[]; sha256: string }; state: { epoch: number } };
  assert.deepEqual([doc.state.epoch, doc.epochs.ended.length], [2, 2]);
  const moved = await fs.mkdtemp(path.join(w.dir, 'moved-'));
  for (const f of ['signer.key', 'signer.yaml', 'passphrase', 'ca.pem', 'server.pem', 'server-key.pem']) await fs.copyFile(path.join(w.dir, f), path.join(moved, f));
  const tryImport = async (name: string, body: unknown) => {
    const file = path.join(w.dir, name);
    await fs.writeFile(file, JSON.stringify(body));
    return signerCli(['import-state', file, '--data-dir', moved]);
  };
  const edited = await tryImport('edited.json', { ...doc, epochs: { ...doc.epochs, ended: doc.epochs.ended.slice(1) } });
  assert.equal(edited.status, 1);
  assert.match(edited.stderr, /its epoch history cannot be taken: checksum mismatch/);
  assert.match(edited.stderr, /SIGNER_IMPORT_INVALID/);
  // Re-checksummed: it passes the file check and fails the replay (epoch 1's change does not apply to genesis).
  const rows = doc.epochs.ended.slice(1);
  const resummed = await tryImport('resummed.json', { ...doc, epochs: { ...doc.epochs, ended: rows, sha256: createHash('sha256').update(JSON.stringify(rows)).digest('hex') } });
  assert.equal(resummed.status, 1);
  assert.match(resummed.stderr, /its epoch history cannot be taken: ended\[0\] \(the end of epoch 0\) does not follow from the epochs before it/);
  const { epochs: _history, ...bare } = doc;
  const withoutHistory = await tryImport('bare.json', bare);
  assert.equal(withoutHistory.status, 1);
  assert.match(withoutHistory.stderr, /state of epoch 2, but the epoch history .* reaches epoch 0 only/);
  assert.deepEqual((await fs.readdir(moved)).filter((f) => /epochs|safety-state/.test(f)), [], 'a refused import writes nothing');
  const imported = signerCli(['import-state', out, '--data-dir', moved]);
  assert.equal(imported.status, 0, imported.stderr);
  assert.match(imported.stdout, /^merged: epoch 2 \(history of 2 ended epochs\)/);
  assert.equal(await fs.readFile(path.join(moved, 'epochs.json'), 'utf8'), text, 'the history arrived as it was');
  assert.match(signerCli(['import-state', out, '--data-dir', moved]).stdout, /^unchanged: /, 'the same export again changes nothing');
  const there = await startSignerProcess(moved, ['--no-nats']);
  const u = mtlsSignerClient(w, there.port, w.tls!.clientCert, w.tls!.clientKey);
  try {
    assert.deepEqual(await pick(u), { epoch: 2, seated: false, validatorIndex: 0, validatorCount: 5 }, 'the moved signer starts in epoch 2');
  } finally {
    await u.close();
    await there.svc.stop();
  }

  // The rotated-in key: a new signer for m1 that stands by until shown both proofs.
  const dir2 = await fs.mkdtemp(path.join(w.dir, 'rotated-'));
  for (const f of ['passphrase', 'ca.pem', 'server.pem', 'server-key.pem']) await fs.copyFile(path.join(w.dir, f), path.join(dir2, f));
  await fs.writeFile(path.join(dir2, 'signer.key'), await sealKey(w.slh.paramSet, rotated.secretKey, TEST_PASSPHRASE, TEST_KDF), { mode: 0o600 });
  const conf = parse(await fs.readFile(path.join(w.dir, 'signer.yaml'), 'utf8')) as Record<string, unknown>;
  await fs.writeFile(path.join(dir2, 'signer.yaml'), stringify({ ...conf, standby: false }));
  assert.match(String((await expectStartRefused(dir2, ['--init'])).fatal.msg), /member m1.*identities disagree/, 'without standby, a key genesis does not seat is refused');
  await fs.writeFile(path.join(dir2, 'signer.yaml'), stringify({ ...conf, standby: true }));
  const fresh = await startSignerProcess(dir2, ['--init', '--no-nats']);
  const r = mtlsSignerClient(w, fresh.port, w.tls!.clientCert, w.tls!.clientKey);
  try {
    assert.deepEqual(await pick(r), { epoch: 0, seated: false, validatorIndex: 0, validatorCount: 4 });
    await assert.rejects(r.sign(newView(0, 9, w.gqc)), rule('epoch', /not in the validator set of epoch 0/));
    assert.deepEqual(await r.advanceEpoch(proof1), { epoch: 1, already: false, seated: false, validatorIndex: 0, validatorCount: 5 });
    assert.deepEqual(await r.advanceEpoch(proof2), { epoch: 2, already: false, seated: true, validatorIndex: 1, validatorCount: 5 });
    const root2 = genesisQC(proof2.last);
    const sig = await r.sign(newView(2, 1, root2));
    assert.ok(w.slh.verifySync(rotated.publicKey, newViewSigningBytes({ chainId: w.chainId, epoch: 2, view: 1, highQC: root2 }), sig.signature),
      'the new key signs epoch 2\'s messages');
  } finally {
    await r.close();
    await fresh.svc.stop();
  }
});

async function pick(s: RemoteSigner) {
  const id = await s.identity();
  return { epoch: id.epoch, seated: id.seated, validatorIndex: id.validatorIndex, validatorCount: id.validatorCount };
}
