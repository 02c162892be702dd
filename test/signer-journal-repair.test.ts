// Issue 9, item 10 (the signer's share): a torn journal line — a crash in the middle of appending
// it, after the safety state was saved — has a supported recovery. The signer refuses to start and
// names the command; `repair-journal` checks the state covers the journal, keeps the torn bytes in
// a timestamped backup and records the repair; the signer then starts and the request whose line
// was torn replays its stored signature. A state behind the journal, or a chain broken before the
// last line, is refused and nothing is touched. Real files, the real CLI, a real signer process.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Phase, genesisQC, type SignRequest } from '#libs/hotstuff/index.ts';
import { isFedError } from '#libs/errors/index.ts';
import { readJournal, verifyJournal } from '../services/signer/journal.ts';
import { epochProof, makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { expectStartRefused, openInProcess, signerCli } from './support/signer.ts';

let w: SignerWorld;
let journal: string;
let requests: SignRequest[];

before(async () => {
  w = await makeSignerWorld({ n: 4, self: 1 });
  journal = path.join(w.dir, 'journal.jsonl');
  const b1 = w.block(1, w.genesis, { proposer: w.self });
  requests = [
    { kind: 'proposal', epoch: 0, view: 1, block: b1, justify: w.gqc },
    { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: b1.hash, header: b1.header, justify: w.gqc },
    { kind: 'new-view', epoch: 0, view: 2, highQC: w.gqc },
  ];
});
after(() => w.cleanup());

/** Cuts the journal's last line in the middle: the bytes a crash mid-append leaves. */
async function tear(file = journal): Promise<{ kept: Buffer; torn: Buffer }> {
  const bytes = await fs.readFile(file);
  const lastStart = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
  const cutAt = lastStart + Math.floor((bytes.length - 1 - lastStart) / 2);
  await fs.truncate(file, cutAt);
  return { kept: bytes.subarray(0, lastStart), torn: bytes.subarray(lastStart, cutAt) };
}

const backups = async () => (await fs.readdir(w.dir)).filter((f) => f.startsWith('journal.jsonl.torn-'));

test('a torn last line: start refused naming repair-journal; the repair keeps every byte; the torn request replays', async () => {
  const s = await openInProcess(w, { init: true });
  const sigs = [];
  for (const r of requests) sigs.push((await s.sign(r)).signature);
  await s.close();
  const { kept, torn } = await tear();

  const refusedStart = await expectStartRefused(w.dir, ['--insecure']);
  assert.notEqual(refusedStart.code, 0);
  assert.match(JSON.stringify(refusedStart.fatal), /SIGNER_JOURNAL_TORN/);
  assert.match(JSON.stringify(refusedStart.fatal), /repair-journal/);
  assert.equal((await verifyJournal(journal)).ok, false);

  const r = signerCli(['repair-journal', '--data-dir', w.dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^repaired: \\d+ complete entries kept, ${torn.length} torn bytes`));
  const [backup] = await backups();
  assert.ok(backup, 'a timestamped backup of the torn bytes');
  assert.match(backup, /^journal\.jsonl\.torn-\d{8}T\d{6}Z$/);
  assert.deepEqual(await fs.readFile(path.join(w.dir, backup)), torn, 'the torn bytes, exactly');
  const after = await fs.readFile(journal);
  assert.deepEqual(after.subarray(0, kept.length), kept, 'every complete line unchanged');
  const v = await verifyJournal(journal);
  assert.ok(v.ok, JSON.stringify(v));
  let last: Record<string, unknown> | undefined;
  for await (const { entry } of readJournal(journal)) last = entry;
  assert.equal(last?.type, 'repair');
  assert.equal(last?.backup, backup);
  assert.equal(last?.tornBytes, torn.length);

  // A second run changes nothing.
  const again = signerCli(['repair-journal', '--data-dir', w.dir]);
  assert.equal(again.status, 0);
  assert.match(again.stdout, /^not torn/);
  assert.equal((await backups()).length, 1);

  // The signer starts; the request whose journal line was torn gets its stored signature back.
  const s2 = await openInProcess(w);
  const replay = await s2.sign(requests.at(-1)!);
  assert.equal(replay.replayed, true);
  assert.deepEqual(replay.signature, sigs.at(-1));
  await s2.close();
});

test('a state behind the journal is refused and nothing is touched', async () => {
  const stateFile = path.join(w.dir, 'safety-state.json');
  const old = await fs.readFile(stateFile);
  const s = await openInProcess(w);
  const b5 = w.block(5, w.genesis, { proposer: w.self });
  await s.sign({ kind: 'proposal', epoch: 0, view: 5, block: b5, justify: w.gqc });
  await s.sign({ kind: 'new-view', epoch: 0, view: 6, highQC: w.gqc });
  await s.close();
  await tear();
  await fs.writeFile(stateFile, old); // an operator restored an older copy of the state
  const before = await fs.readFile(journal);
  const n = (await backups()).length;
  const r = signerCli(['repair-journal', '--data-dir', w.dir]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /SIGNER_STATE_BEHIND/);
  assert.match(r.stderr, /proposal signed at view 5 phase 0, above the state's mark \(view 1 phase 0\)/);
  assert.deepEqual(await fs.readFile(journal), before);
  assert.equal((await backups()).length, n);
  await assert.rejects(openInProcess(w), (e: unknown) => isFedError(e, 'SIGNER_JOURNAL_TORN'));
});

test('a chain broken before the last line is not a torn write: refused, nothing touched', async () => {
  const text = (await fs.readFile(journal, 'utf8')).split('\n');
  text[1] = text[1]!.replace('"type":', '"edited":true,"type":');
  await fs.writeFile(journal, text.join('\n'));
  const before = await fs.readFile(journal);
  const r = signerCli(['repair-journal', '--data-dir', w.dir]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /SIGNER_JOURNAL_BROKEN/);
  assert.deepEqual(await fs.readFile(journal), before);
});

test('a crash during the first --init (journal torn, no state yet): repaired, then --init works', async () => {
  const w2 = await makeSignerWorld({ n: 4, self: 1 });
  try {
    const j = path.join(w2.dir, 'journal.jsonl');
    await fs.writeFile(j, '{"seq":1,"at":"2026-11-22T13:00:00.000Z","prev":"', { mode: 0o600 });
    await assert.rejects(openInProcess(w2, { init: true }));
    const r = signerCli(['repair-journal', '--data-dir', w2.dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^repaired: 0 complete entries kept/);
    const s = await openInProcess(w2, { init: true });
    await s.close();
    assert.ok((await verifyJournal(j)).ok);
  } finally {
    await w2.cleanup();
  }
});

test('no state while the journal records signatures: refused (the state was lost; --init stays refused too)', async () => {
  const w3 = await makeSignerWorld({ n: 4, self: 1 });
  try {
    const s = await openInProcess(w3, { init: true });
    await s.sign({ kind: 'new-view', epoch: 0, view: 1, highQC: w3.gqc });
    await s.sign({ kind: 'new-view', epoch: 0, view: 2, highQC: w3.gqc });
    await s.close();
    const j = path.join(w3.dir, 'journal.jsonl');
    const bytes = await fs.readFile(j);
    await fs.writeFile(j, bytes.subarray(0, bytes.length - 20));
    await fs.rm(path.join(w3.dir, 'safety-state.json'));
    const r = signerCli(['repair-journal', '--data-dir', w3.dir]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /SIGNER_STATE_BEHIND/);
    assert.match(r.stderr, /there is no state, yet line \d+ records a signature/);
  } finally {
    await w3.cleanup();
  }
});

test('after an epoch ended: an earlier epoch\'s higher views are not "above the mark"; a journal ahead of the state\'s epoch is refused', async () => {
  // Views and the state's marks start again at every epoch: a journal whose epoch 0 reached view 6
  // and whose epoch 1 is at view 1 is whole, whether the torn line is epoch 1's first request or
  // the advance itself (the state is saved before the line).
  const w4 = await makeSignerWorld({ n: 4, self: 1 });
  try {
    const j = path.join(w4.dir, 'journal.jsonl');
    const stateFile = path.join(w4.dir, 'safety-state.json');
    const proof = await epochProof(w4, w4.genesis, { chainId: w4.chainId, epoch: 0, ops: [{ kind: 'params', baseTimeoutMs: 2000, idleHeartbeatMs: 0 }] },
      [0, 1, 2], [0, 2, 3], (i) => w4.keys[i]!.secretKey);
    let s = await openInProcess(w4, { init: true });
    for (let view = 1; view <= 6; view++) await s.sign({ kind: 'new-view', epoch: 0, view, highQC: w4.gqc });
    const epoch0State = await fs.readFile(stateFile);
    assert.equal((await s.advanceEpoch(proof, 'test')).epoch, 1);
    await s.close();

    // The advance's own line torn: the state is epoch 1's (nothing signed), the lines epoch 0's.
    await tear(j);
    let r = signerCli(['repair-journal', '--data-dir', w4.dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^repaired: /);

    // Epoch 1's first new-view torn.
    s = await openInProcess(w4);
    await s.sign({ kind: 'new-view', epoch: 1, view: 1, highQC: genesisQC(proof.last) });
    await s.close();
    await tear(j);
    r = signerCli(['repair-journal', '--data-dir', w4.dir]);
    assert.equal(r.status, 0, r.stderr);
    let last: Record<string, unknown> | undefined;
    for await (const { entry } of readJournal(j)) if (entry.type === 'request') last = entry;
    assert.equal(last?.epoch, 0, 'request lines say the epoch they were decided in');

    // A state of epoch 0 restored over epoch 1's: behind the journal, whatever its marks say.
    s = await openInProcess(w4);
    await s.sign({ kind: 'new-view', epoch: 1, view: 2, highQC: genesisQC(proof.last) });
    await s.close();
    await tear(j);
    await fs.writeFile(stateFile, epoch0State);
    const before = await fs.readFile(j);
    r = signerCli(['repair-journal', '--data-dir', w4.dir]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /SIGNER_STATE_BEHIND/);
    assert.match(r.stderr, /is of epoch 1, the state of epoch 0/);
    assert.deepEqual(await fs.readFile(j), before, 'nothing touched');
  } finally {
    await w4.cleanup();
  }
});
