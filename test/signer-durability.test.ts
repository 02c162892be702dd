// Durability proven from system calls, not asserted (issue 9): the real signer process runs under
// strace, every fsync/fdatasync made 20 ms slow, and for each signature it hands out the trace
// must show, in this order and each finished before the next began:
//   write of the new state to its temp file → fsync of that file → rename over safety-state.json
//   → fsync of the data dir → write of the journal line recording this signature → fdatasync of
//   the journal → and only then the gRPC response carrying the signature, written on the socket.
// A signer that skipped or did not await any of these flushes fails here (checked by removing
// each one locally), which the kill -9 test (test/signer-crash.test.ts) cannot see.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { sha256Hex } from '#libs/crypto/index.ts';
import { Phase, type SignRequest } from '#libs/hotstuff/index.ts';
import { createRemoteSigner } from '../services/signer/client.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { firstAfter, isFlush, isRename, isSocket, isWrite, parseStrace, requireStrace, startTraced, type Syscall } from './support/strace.ts';
import { openInProcess, signerCli } from './support/signer.ts';

let w: SignerWorld;
before(async () => { w = await makeSignerWorld({ n: 4, self: 1 }); });
after(() => w.cleanup());

/** The bytes of `sig` as the traced process wrote them (strace's escapes decoded: one char per byte). */
const asTraced = (b: Uint8Array) => Buffer.from(b).toString('latin1');

test('each signature leaves the signer only after its state (write, fsync, rename, fsync of the dir) and its journal line (write, fdatasync) are on disk', async () => {
  requireStrace();
  // --init once, outside the trace.
  const init = await openInProcess(w, { init: true });
  await init.close();
  assert.equal(signerCli(['verify-journal', '--data-dir', w.dir]).status, 0);

  const out = path.join(w.dir, 'signer.trace');
  const t = startTraced({
    out, extra: ['-e', 'inject=fsync,fdatasync:delay_enter=20000'],
    argv: [process.execPath, 'services/signer/main.ts', 'run', '--data-dir', w.dir, '--listen', '127.0.0.1:0', '--insecure', '--no-nats'],
  });
  let port = 0;
  for await (const line of createInterface({ input: t.child.stdout! })) {
    const l = JSON.parse(line) as { msg?: string; grpcPort?: number };
    if (l.msg === 'signer ready') { port = l.grpcPort!; break; }
  }
  assert.ok(port > 0, 'the traced signer is ready');
  const client = createRemoteSigner({ address: `127.0.0.1:${port}`, validatorCount: w.n, security: { mode: 'insecure' } });
  const b1 = w.block(1, w.genesis, { proposer: w.self });
  const requests: SignRequest[] = [
    { kind: 'proposal', epoch: 0, view: 1, block: b1, justify: w.gqc },
    { kind: 'vote', epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: b1.hash, header: b1.header, justify: w.gqc },
    { kind: 'new-view', epoch: 0, view: 2, highQC: w.gqc },
  ];
  const sigs: Uint8Array[] = [];
  try {
    await client.ready();
    for (const r of requests) sigs.push((await client.sign(r)).signature);
  } finally {
    await client.close();
    await t.stop();
  }
  const calls = parseStrace(await fs.readFile(out, 'utf8'));
  if (process.env.SIGNER_TRACE_KEEP) await fs.copyFile(out, process.env.SIGNER_TRACE_KEEP);
  const stateFile = path.join(w.dir, 'safety-state.json');
  const journalFile = path.join(w.dir, 'journal.jsonl');

  let floor: Syscall | undefined; // each signature's proof must come after the previous one's reply
  for (const [i, sig] of sigs.entries()) {
    const what = `signature ${i + 1} (${requests[i]!.kind})`;
    const sigHash = sha256Hex(sig);
    const head = asTraced(sig.subarray(0, 48));
    const send = firstAfter(calls, floor, (c) => isSocket(c) && isWrite(c) && c.strings.some((s) => s.includes(head)));
    assert.ok(send, `${what}: its bytes were written on the gRPC socket`);
    // Walk back from the journal line that records this signature.
    const journalWrite = calls.find((c) => isWrite(c) && c.path === journalFile && c.data.includes(`"sig":"${sigHash}"`));
    assert.ok(journalWrite, `${what}: a journal write records it`);
    const renames = calls.filter((c) => isRename(c) && c.strings[1] === stateFile && c.end < journalWrite.start && c.start > (floor?.end ?? -1));
    const rename = renames.at(-1);
    assert.ok(rename, `${what}: the state was renamed into place before the journal line`);
    const tmp = rename.strings[0]!;
    const tmpWrite = calls.find((c) => isWrite(c) && c.path === tmp);
    assert.ok(tmpWrite, `${what}: the new state was written to ${path.basename(tmp)}`);
    const tmpSync = firstAfter(calls, tmpWrite, (c) => isFlush(c) && c.path === tmp);
    assert.ok(tmpSync && tmpSync.end < rename.start, `${what}: the temp state file was fsync'd before the rename`);
    const dirSync = firstAfter(calls, rename, (c) => isFlush(c) && c.path === w.dir);
    assert.ok(dirSync && dirSync.end < journalWrite.start, `${what}: the data dir was fsync'd after the rename, before the journal line`);
    const journalSync = firstAfter(calls, journalWrite, (c) => isFlush(c) && c.path === journalFile);
    assert.ok(journalSync, `${what}: the journal was flushed after its line`);
    assert.ok(journalSync.end < send.start, `${what}: the reply was written (line ${send.start}) before the journal flush returned (line ${journalSync.end})`);
    assert.ok(dirSync.end < send.start && tmpSync.end < send.start);
    floor = send;
  }
});
