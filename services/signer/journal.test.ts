// The hash-chained journal: appends chain, verification finds the first broken line, and a
// torn or missing journal is refused when opening.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import { CHAIN_START, openJournal, verifyJournal } from './journal.ts';

async function withJournal(fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'signer-journal-'));
  try {
    await fn(path.join(dir, 'journal.jsonl'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

test('entries chain by the hash of the previous line and survive a reopen', () => withJournal(async (file) => {
  await assert.rejects(openJournal(file, { create: false }), (e: unknown) => isFedError(e, 'SIGNER_JOURNAL_MISSING'));
  let j = await openJournal(file, { create: true });
  const first = await j.append({ type: 'init' });
  assert.equal(first.prev, CHAIN_START);
  await j.append({ type: 'request', decision: 'signed' });
  await j.close();
  j = await openJournal(file, { create: false });
  assert.equal(j.seq, 2);
  await j.append({ type: 'start' });
  await j.close();
  const v = await verifyJournal(file);
  assert.ok(v.ok);
  assert.equal(v.entries, 3);
  assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
}));

test('verification reports the first edited, removed or reordered line', () => withJournal(async (file) => {
  const j = await openJournal(file, { create: true });
  for (let i = 0; i < 5; i++) await j.append({ type: 'request', decision: i % 2 ? 'signed' : 'refused', view: i });
  await j.close();
  const lines = (await fs.readFile(file, 'utf8')).trimEnd().split('\n');
  const check = async (edited: string[], line: number) => {
    await fs.writeFile(file, `${edited.join('\n')}\n`);
    const v = await verifyJournal(file);
    assert.equal(v.ok, false);
    if (!v.ok) assert.equal(v.line, line, v.reason);
  };
  await check(lines.map((l, i) => (i === 2 ? l.replace('"view":2', '"view":9') : l)), 4);
  await check(lines.filter((_, i) => i !== 1), 2);
  await check([lines[0]!, lines[2]!, lines[1]!, ...lines.slice(3)], 2);
  await check([...lines.slice(0, 4), 'not json'], 5);
}));

test('a journal ending in a partial line is refused when opened and reported by verify', () => withJournal(async (file) => {
  const j = await openJournal(file, { create: true });
  await j.append({ type: 'init' });
  await j.close();
  await fs.appendFile(file, '{"seq":2,"prev"');
  await assert.rejects(openJournal(file, { create: false }), (e: unknown) => isFedError(e, 'SIGNER_JOURNAL_TORN'));
  assert.equal((await verifyJournal(file)).ok, false);
}));

test('rotation: old files kept as journal-<seq>.jsonl, the chain carried on across them and checked whole; the oldest beyond the kept number dropped', () => withJournal(async (file) => {
  const dir = path.dirname(file);
  let j = await openJournal(file, { create: true, rotateBytes: 600, keepSegments: 3 });
  for (let i = 0; i < 60; i++) await j.append({ type: 'request', decision: 'signed', view: i });
  await j.close();
  const segments = (await fs.readdir(dir)).filter((n) => /^journal-\d{12}\.jsonl$/.test(n)).sort();
  assert.equal(segments.length, 3, `the three newest kept: ${segments}`);
  const first = JSON.parse((await fs.readFile(file, 'utf8')).split('\n')[0]!);
  assert.equal(first.type, 'rotated');
  assert.equal(first.from, segments.at(-1), 'the new file names the one it follows');
  const v = await verifyJournal(file);
  assert.ok(v.ok, JSON.stringify(v));
  assert.equal(v.files, 4);
  assert.ok(v.firstSeq > 1, 'older files were dropped: checked from the oldest kept');
  // Reopened: the chain goes on from the active file's last line.
  j = await openJournal(file, { create: false, rotateBytes: 600, keepSegments: 3 });
  const before = j.seq;
  assert.ok(before > 60, 'sixty requests and the rotated lines');
  const e = await j.append({ type: 'start' });
  await j.close();
  assert.equal(e.seq, before + 1);
  assert.ok((await verifyJournal(file)).ok);
  // An edited line in a kept old file breaks the chain, and says which file.
  const victim = path.join(dir, segments[1]!);
  const lines = (await fs.readFile(victim, 'utf8')).split('\n');
  lines[1] = lines[1]!.replace('"view":', '"view":1');
  await fs.writeFile(victim, lines.join('\n'));
  const broken = await verifyJournal(file);
  assert.equal(broken.ok, false);
  if (!broken.ok) assert.ok(broken.file === victim || broken.file === path.join(dir, segments[2]!), broken.file);
}));

test('rotation survives a crash between linking the old file and renaming the new one', () => withJournal(async (file) => {
  const dir = path.dirname(file);
  let j = await openJournal(file, { create: true, rotateBytes: 10_000_000 });
  for (let i = 0; i < 5; i++) await j.append({ type: 'request', decision: 'signed', view: i });
  await j.close();
  // The state a crash leaves: the archive link made, a stale ".next" beside, journal.jsonl the old file.
  await fs.link(file, path.join(dir, 'journal-000000000005.jsonl'));
  await fs.writeFile(path.join(dir, '.journal.jsonl.next'), 'stale\n');
  j = await openJournal(file, { create: false, rotateBytes: 1 });
  await j.append({ type: 'start' }); // rotates now: the link exists already
  await j.close();
  const v = await verifyJournal(file);
  assert.ok(v.ok, JSON.stringify(v));
  assert.equal(v.entries, 7, 'five, the rotated line, the start');
}));

test('a torn line after a rotation is repaired on the carried-on chain', () => withJournal(async (file) => {
  const { repairTornJournal } = await import('./repair.ts');
  const j = await openJournal(file, { create: true, rotateBytes: 300 });
  for (let i = 0; i < 12; i++) await j.append({ type: 'start', i });
  await j.close();
  assert.equal(JSON.parse((await fs.readFile(file, 'utf8')).split('\n')[0]!).type, 'rotated');
  await fs.appendFile(file, '{"seq":99,"at":"to');
  assert.equal((await verifyJournal(file)).ok, false);
  const r = await repairTornJournal(path.dirname(file));
  assert.equal(r.repaired, true);
  const v = await verifyJournal(file);
  assert.ok(v.ok, JSON.stringify(v));
}));
