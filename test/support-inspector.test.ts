// The inspector session the Byzantine runner uses to have a service collect its garbage before it
// reads the heap (test/support/inspector.ts), and bench/attach-profile.ts to profile one: on a real
// child process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { collectGarbage, inspect, writeHeapSnapshot } from './support/inspector.ts';

/** A child that makes ~100 MiB of old-generation garbage, then answers each line on stdin with its heap in use. */
const CHILD = `
let keep = [];
for (let i = 0; i < 400; i++) { keep.push(Array.from({ length: 32768 }, (_, k) => ({ k }))); if (keep.length > 200) keep = keep.slice(100); }
keep = null;
process.stdin.on('data', () => process.stdout.write(process.memoryUsage().heapUsed + '\\n'));
process.stdout.write('ready\\n');
`;

test('a live process collects its garbage when asked through its inspector, which is closed again', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const lines: string[] = [];
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
    const next = async () => {
      const n = lines.length;
      child.stdin.write('\n');
      while (lines.length === n) await once(child.stdout, 'data');
      return Number(lines.at(-1));
    };
    while (!lines.includes('ready')) await once(child.stdout, 'data');
    const before = await next();
    await collectGarbage(child.pid!);
    const after = await next();
    assert.ok(after < before / 2, `heap in use ${before} bytes before the collection, ${after} after`);
    // The inspector is closed: sessions opened one right after the other each open it again and
    // reach this child, which lives through them all (a signal sent while the last inspector was
    // still closing was dropped, and ending the inspector inside a message crashed the child).
    for (let k = 0; k < 20; k++) {
      const s = await inspect(child.pid!);
      const { result } = (await s.send('Runtime.evaluate', { expression: `${k} + 1` })) as { result: { value: number } };
      await s.close();
      assert.equal(result.value, k + 1);
    }
    // A heap snapshot, whole: the JSON of V8's format, with the child's objects in it.
    const file = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-snapshot-')), 'child.heapsnapshot');
    try {
      await writeHeapSnapshot(child.pid!, file);
      const snap = JSON.parse(await fs.readFile(file, 'utf8')) as { snapshot: { node_count: number }; nodes: number[]; strings: string[] };
      assert.ok(snap.snapshot.node_count > 1000 && snap.nodes.length > 0, `${snap.snapshot.node_count} nodes`);
      assert.ok(snap.strings.includes('keep'), 'the child\'s own variable is in it');
    } finally {
      await fs.rm(path.dirname(file), { recursive: true, force: true });
    }
  } finally {
    child.kill();
  }
});

test('an inspector that never answers is an error naming the port, and leaves nothing holding this process', { timeout: 60_000 }, async () => {
  // The child opens its inspector on its own port; the session looks for it on another one.
  const child = spawn(process.execPath, ['--inspect-port=0', '-e', 'setInterval(() => {}, 1000); console.log("ready")'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await once(child.stdout, 'data'); // a SIGUSR1 before Node has set its handler would end the child
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const unused = 1 + (child.pid! % 1000) + 40_000;
    await assert.rejects(inspect(child.pid!, unused), new RegExp(`no inspector on 127\\.0\\.0\\.1:${unused}`));
    assert.equal(timers(), before, 'a timer of the failed attempt is still active: this test file would never exit');
  } finally {
    child.kill();
  }
});
