// The signer's audit journal: append-only JSON lines, each carrying the SHA-256 of the line
// before it (the first carries 64 zeros), fsync'd before the signer replies. Every request and
// its decision goes in — signed, replayed or refused with the rule — plus start, init and
// import records. verifyJournal walks the chain and reports the first broken line.
// Must never rewrite or truncate an existing line, and never hold a secret or a whole signature
// (a signature is recorded by its SHA-256).

import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { FedError } from '#libs/errors/index.ts';
import { sha256Hex } from '#libs/crypto/index.ts';
import { fsyncDir } from '#libs/files/index.ts';

export const JOURNAL_FILE = 'journal.jsonl';
export const CHAIN_START = '0'.repeat(64);

export interface JournalRecord { type: string; [field: string]: unknown }
export interface JournalEntry extends JournalRecord { seq: number; at: string; prev: string }

export interface Journal {
  readonly file: string;
  /** Sequence number of the last line written (0 when empty). */
  readonly seq: number;
  /** SHA-256 of the last line: record it off-host to anchor the chain's head. */
  readonly head: string;
  /** Durable (fsync'd) when it resolves. */
  append(record: JournalRecord, now?: Date): Promise<JournalEntry>;
  close(): Promise<void>;
}

const lineHash = sha256Hex;

/** The last line of a file (without its newline) and whether the file ends with one. */
async function lastLine(file: string): Promise<{ line: string | undefined; terminated: boolean }> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size === 0) return { line: undefined, terminated: true };
    let chunk = 4096;
    for (;;) {
      const start = Math.max(0, size - chunk);
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      const text = buf.toString('utf8');
      const terminated = text.endsWith('\n');
      const body = terminated ? text.slice(0, -1) : text;
      const cut = body.lastIndexOf('\n');
      if (cut >= 0 || start === 0) return { line: body.slice(cut + 1), terminated };
      chunk *= 4;
    }
  } finally {
    await handle.close();
  }
}

/** Opens the journal for appending; `create` allows a new, empty one (init and import only). */
export async function openJournal(file: string, opts: { create: boolean }): Promise<Journal> {
  let seq = 0;
  let prev = CHAIN_START;
  let exists = true;
  try {
    const tail = await lastLine(file);
    if (!tail.terminated) {
      throw new FedError('SIGNER_JOURNAL_TORN', `journal ${file} ends in a partial line (a crash mid-write, or tampering): with the signer stopped, run \`signer repair-journal --data-dir DIR\` — it checks the safety state against the journal, keeps the torn bytes in a timestamped backup and records the repair`, { file });
    }
    if (tail.line !== undefined) {
      const last = parseEntry(tail.line, file, -1);
      seq = last.seq;
      prev = lineHash(tail.line);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    exists = false;
  }
  if (!exists && !opts.create) {
    throw new FedError('SIGNER_JOURNAL_MISSING', `journal ${file} is missing while the safety state exists; the audit trail was removed — restore it before starting`, { file });
  }
  const handle = await fs.open(file, 'a', 0o600);
  if (!exists) await fsyncDir(path.dirname(file));
  return {
    file,
    get seq() { return seq; },
    get head() { return prev; },
    async append(record, now = new Date()) {
      const entry: JournalEntry = { seq: seq + 1, at: now.toISOString(), prev, ...record };
      const line = JSON.stringify(entry);
      await handle.write(`${line}\n`);
      await handle.datasync();
      seq = entry.seq;
      prev = lineHash(line);
      return entry;
    },
    close: () => handle.close(),
  };
}

function parseEntry(line: string, file: string, lineNo: number): JournalEntry {
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    throw new FedError('SIGNER_JOURNAL_BROKEN', `journal ${file} line ${lineNo < 0 ? '(last)' : lineNo} is not JSON`, { file, line: lineNo });
  }
  const entry = e as Partial<JournalEntry>;
  if (typeof entry !== 'object' || entry === null || !Number.isSafeInteger(entry.seq) || typeof entry.prev !== 'string' || typeof entry.type !== 'string') {
    throw new FedError('SIGNER_JOURNAL_BROKEN', `journal ${file} line ${lineNo < 0 ? '(last)' : lineNo} lacks seq, prev or type`, { file, line: lineNo });
  }
  return entry as JournalEntry;
}

export type JournalVerdict =
  | { ok: true; entries: number; head: string }
  | { ok: false; entries: number; line: number; reason: string };

/** Every entry in order, with its line number (1-based); throws SIGNER_JOURNAL_BROKEN on a bad line. */
export async function* readJournal(file: string): AsyncGenerator<{ line: number; entry: JournalEntry; text: string }> {
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const text of rl) {
    n++;
    yield { line: n, entry: parseEntry(text, file, n), text };
  }
}

/** Walks the chain: each line's prev is the hash of the line before, seq counts up by one. */
export async function verifyJournal(file: string): Promise<JournalVerdict> {
  let prev = CHAIN_START;
  let entries = 0;
  try {
    const { terminated } = await lastLine(file);
    for await (const { line, entry, text } of readJournal(file)) {
      if (entry.prev !== prev) return { ok: false, entries, line, reason: `prev ${entry.prev.slice(0, 16)}… is not the hash of line ${line - 1} (${prev.slice(0, 16)}…)` };
      if (entry.seq !== line) return { ok: false, entries, line, reason: `seq ${entry.seq} where ${line} was expected` };
      prev = lineHash(text);
      entries++;
    }
    if (!terminated) return { ok: false, entries, line: entries, reason: 'the last line has no newline (torn write)' };
  } catch (err) {
    if (err instanceof FedError) return { ok: false, entries, line: (err.details.line as number) ?? entries + 1, reason: err.message };
    throw err;
  }
  return { ok: true, entries, head: prev };
}
