// The signer's audit journal: append-only JSON lines, each carrying the SHA-256 of the line
// before it (the first carries 64 zeros), fsync'd before the signer replies. Every request and
// its decision goes in — signed, replayed or refused with the rule — plus start, init and
// import records. verifyJournal walks the chain and reports the first broken line.
// Must never rewrite or truncate an existing line, and never hold a secret or a whole signature
// (a signature is recorded by its SHA-256).
//
// Rotation keeps the disk bounded and the chain whole: once journal.jsonl passes `rotateBytes`,
// it is kept as journal-<its last seq>.jsonl and a new journal.jsonl begins with a `rotated` line
// that carries on the chain (its prev is the hash of the old file's last line, its seq the next).
// The newest `keepSegments` old files are kept (ship them off-host to keep more); verifyJournal
// walks every kept file in order and checks the links between them. Order of a rotation, so a
// crash at any point leaves a journal that opens: the new file is written and fsync'd aside, the
// old one is hard-linked to its archive name, and only then renamed over by the new one.

import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { FedError } from '#libs/errors/index.ts';
import { sha256Hex } from '#libs/crypto/index.ts';
import { fsyncDir } from '#libs/files/index.ts';

export const JOURNAL_FILE = 'journal.jsonl';
export const CHAIN_START = '0'.repeat(64);
/** Defaults: a new file past 64 MiB (~200,000 entries), the 16 newest old files kept (~1 GiB at most). */
export const ROTATE_BYTES = 64 * 1024 * 1024;
export const KEEP_SEGMENTS = 16;
const SEGMENT = /^journal-(\d{12})\.jsonl$/;
const segmentName = (lastSeq: number) => `journal-${String(lastSeq).padStart(12, '0')}.jsonl`;

export interface JournalOptions {
  /** Allow a new, empty journal (init and import only). */
  create: boolean;
  rotateBytes?: number;
  keepSegments?: number;
}

/** Where a file's chain starts: at the beginning (seq 1, 64 zeros) or after a rotation (its first line says). */
export function chainStartOf(first: JournalEntry | undefined): { seq: number; prev: string } {
  return first?.type === 'rotated' ? { seq: first.seq, prev: first.prev } : { seq: 1, prev: CHAIN_START };
}

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
export async function openJournal(file: string, opts: JournalOptions): Promise<Journal> {
  let seq = 0;
  let prev = CHAIN_START;
  let exists = true;
  let bytes = 0;
  const rotateBytes = opts.rotateBytes ?? ROTATE_BYTES;
  const keep = opts.keepSegments ?? KEEP_SEGMENTS;
  const dir = path.dirname(file);
  try {
    bytes = (await fs.stat(file)).size;
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
  let handle = await fs.open(file, 'a', 0o600);
  if (!exists) await fsyncDir(dir);

  /** The current file becomes journal-<seq>.jsonl; a new one carries the chain on (see the top). */
  async function rotate(now: Date): Promise<void> {
    const archive = segmentName(seq);
    const entry: JournalEntry = { seq: seq + 1, at: now.toISOString(), prev, type: 'rotated', from: archive };
    const line = JSON.stringify(entry);
    const next = path.join(dir, `.${path.basename(file)}.next`);
    await fs.writeFile(next, `${line}\n`, { mode: 0o600, flush: true });
    await handle.close();
    try {
      await fs.link(file, path.join(dir, archive));
    } catch (err) {
      // A crash after the link, before the rename, left it: the same file, linked already.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await fs.rename(next, file);
    await fsyncDir(dir);
    handle = await fs.open(file, 'a', 0o600);
    seq = entry.seq;
    prev = lineHash(line);
    bytes = line.length + 1;
    const old = (await fs.readdir(dir)).filter((n) => SEGMENT.test(n)).sort();
    for (const name of old.slice(0, Math.max(0, old.length - keep))) await fs.rm(path.join(dir, name), { force: true });
  }

  return {
    file,
    get seq() { return seq; },
    get head() { return prev; },
    async append(record, now = new Date()) {
      if (bytes >= rotateBytes && seq > 0) await rotate(now);
      const entry: JournalEntry = { seq: seq + 1, at: now.toISOString(), prev, ...record };
      const line = JSON.stringify(entry);
      await handle.write(`${line}\n`);
      await handle.datasync();
      seq = entry.seq;
      prev = lineHash(line);
      bytes += Buffer.byteLength(line) + 1;
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
  | { ok: true; entries: number; head: string; files: number; firstSeq: number }
  | { ok: false; entries: number; line: number; reason: string; file: string };

/** Every entry in order, with its line number (1-based); throws SIGNER_JOURNAL_BROKEN on a bad line. */
export async function* readJournal(file: string): AsyncGenerator<{ line: number; entry: JournalEntry; text: string }> {
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const text of rl) {
    n++;
    yield { line: n, entry: parseEntry(text, file, n), text };
  }
}

/**
 * Walks the chain through every kept file, oldest first (journal-<seq>.jsonl, then `file`): each
 * line's prev is the hash of the line before, seq counts up by one, and a file that begins with a
 * `rotated` line follows the file before it. The oldest kept file may begin with one (older files
 * were dropped): the chain is checked from there (firstSeq says where).
 */
export async function verifyJournal(file: string): Promise<JournalVerdict> {
  const dir = path.dirname(file);
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => SEGMENT.test(n)).sort();
  const files = [...names.map((n) => path.join(dir, n)), file];
  let prev: string | undefined;
  let seq = 0;
  let entries = 0;
  let firstSeq = 1;
  for (const [k, f] of files.entries()) {
    let n = 0;
    try {
      const { terminated } = await lastLine(f);
      for await (const { line, entry, text } of readJournal(f)) {
        n = line;
        if (line === 1) {
          const start = chainStartOf(entry);
          if (prev === undefined) {
            firstSeq = start.seq;
            prev = start.prev;
            seq = start.seq - 1;
          } else if (entry.type !== 'rotated') {
            return { ok: false, entries, line, file: f, reason: `follows ${path.basename(files[k - 1]!)} but does not begin with a rotated line` };
          }
        }
        const want = prev ?? CHAIN_START;
        if (entry.prev !== want) return { ok: false, entries, line, file: f, reason: `prev ${entry.prev.slice(0, 16)}… is not the hash of the line before (${want.slice(0, 16)}…)` };
        if (entry.seq !== seq + 1) return { ok: false, entries, line, file: f, reason: `seq ${entry.seq} where ${seq + 1} was expected` };
        prev = lineHash(text);
        seq = entry.seq;
        entries++;
      }
      if (!terminated) return { ok: false, entries, line: n, file: f, reason: 'the last line has no newline (torn write)' };
    } catch (err) {
      if (err instanceof FedError) return { ok: false, entries, line: (err.details.line as number) ?? n + 1, file: f, reason: err.message };
      throw err;
    }
  }
  return { ok: true, entries, head: prev ?? CHAIN_START, files: files.length, firstSeq };
}
