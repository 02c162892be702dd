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
