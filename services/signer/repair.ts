// The supported recovery from a torn journal (a crash, or a full disk, in the middle of appending
// a line): `signer repair-journal --data-dir DIR`, with no signer running. It checks before it
// touches anything, and never drops a byte:
//   1. the complete lines still chain (verify-journal's rules) — otherwise it is not a torn
//      write but a damaged or edited journal, and it refuses;
//   2. the safety state is this journal's (same key and chain) and is not behind it: no line
//      records an epoch later than the state's, and every slot the complete lines record as signed
//      or replayed in the state's epoch is at or below the state's mark of its kind (an earlier
//      epoch's slots are not compared: views start again at every epoch, and so do the marks).
//      The state may be ahead by the request whose line was torn (the state is saved before the
//      line is appended), never behind. No state at all is accepted only when the complete lines
//      record no signature (a crash during the first --init, which writes the journal first);
//   3. the torn tail (the bytes after the last newline) goes to `journal.jsonl.torn-<UTC time>`
//      (temp file, fsync, rename, fsync of the directory);
//   4. the journal is replaced atomically by its complete lines plus a `repair` record naming the
//      backup, the tail's length and SHA-256 and the state's marks (copy, truncate, append,
//      fsync, rename, fsync of the directory): a crash leaves either the torn journal (run it
//      again) or the repaired one.
// Must never run while a signer runs (the caller holds signer.lock), never alter a complete line,
// and never proceed when the state is behind the journal (that state would sign against its past).

import fs from 'node:fs/promises';
import path from 'node:path';
import { FedError } from '#libs/errors/index.ts';
import { sha256Hex } from '#libs/crypto/index.ts';
import { fsyncDir, writeFileAtomic } from '#libs/files/index.ts';
import { CHAIN_START, JOURNAL_FILE, chainStartOf, readJournal, type JournalEntry } from './journal.ts';
import type { SignerSafety, SlotKind } from './rules.ts';
import { STATE_FILE, safetyStore } from './state-file.ts';

export interface RepairResult {
  /** false: the journal was not torn; nothing was changed. */
  repaired: boolean;
  /** Complete lines kept. */
  entries: number;
  backup?: string;
  tornBytes?: number;
  tornSha256?: string;
}

/** The timestamped backup name: journal.jsonl.torn-20261122T130512Z (+ -N when taken). */
async function backupName(file: string, now: Date): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  for (let i = 0; ; i++) {
    const name = `${file}.torn-${stamp}${i ? `-${i}` : ''}`;
    try {
      await fs.access(name);
    } catch {
      return name;
    }
  }
}

function markOf(state: SignerSafety, kind: SlotKind): [number, number] {
  switch (kind) {
    case 'vote': return [state.lastVote.view, state.lastVote.phase];
    case 'proposal': return [state.lastProposalView, 0];
    case 'new-view': return [state.lastNewView, 0];
  }
}

/**
 * The epoch a line was written in: its own `epoch` (request lines carry it), else the epoch the
 * lines before it set — a `start` line is of the state's epoch at that start, an advance's line
 * names the epoch it began, an import the imported state's. Undefined for lines of a journal
 * written before request lines carried their epoch, above the first such marker in their file
 * (a rotated file's head): those are compared with the state's marks, as before.
 */
function epochAfter(e: JournalEntry, before: number | undefined): number | undefined {
  const stated = typeof e.epoch === 'number' ? e.epoch : undefined;
  if (e.type === 'start' || (e.type === 'epoch' && e.decision === 'advanced')) return stated;
  if (e.type === 'import') return stated; // undefined for an older import line: the imported epoch is not known
  return e.type === 'request' ? stated ?? before : before;
}

/** Why the state cannot be trusted against this journal entry (written in `epoch`), or null. */
function behind(state: SignerSafety | undefined, e: JournalEntry, epoch: number | undefined): string | null {
  if (!state) {
    const signed = e.type === 'request' && (e.decision === 'signed' || e.decision === 'replayed');
    return signed || e.type === 'import' ? `there is no state, yet line ${e.seq} records a ${e.type === 'import' ? 'state import' : 'signature'}` : null;
  }
  if ((e.type === 'init' || e.type === 'import') && typeof e.publicKey === 'string' && e.publicKey !== state.publicKey) {
    return `line ${e.seq} is of key ${e.publicKey.slice(0, 16)}…, the state of key ${state.publicKey.slice(0, 16)}…`;
  }
  if (e.type === 'init' && typeof e.chainId === 'string' && e.chainId !== state.chainId) return `line ${e.seq} is of chain ${e.chainId}, the state of ${state.chainId}`;
  if (epoch !== undefined && epoch > state.epoch) {
    return `line ${e.seq} is of epoch ${epoch}, the state of epoch ${state.epoch}`;
  }
  if (e.type !== 'request' || (e.decision !== 'signed' && e.decision !== 'replayed')) return null;
  // An earlier epoch's slots say nothing about this epoch's marks, which started again at zero.
  if (epoch !== undefined && epoch < state.epoch) return null;
  const kind = e.kind as SlotKind;
  const view = Number(e.view);
  const phase = Number(e.phase);
  const [mv, mp] = markOf(state, kind);
  if (view > mv || (view === mv && phase > mp)) {
    return `line ${e.seq} records a ${kind} signed at view ${view} phase ${phase}, above the state's mark (view ${mv} phase ${mp})`;
  }
  return null;
}

export async function repairTornJournal(dataDir: string, now = new Date()): Promise<RepairResult> {
  const file = path.join(dataDir, JOURNAL_FILE);
  const stateFile = path.join(dataDir, STATE_FILE);
  const bytes = await fs.readFile(file);
  const cut = bytes.lastIndexOf(0x0a) + 1; // 0 when there is no complete line at all
  // 1. The complete lines chain.
  const head = path.join(dataDir, `.${JOURNAL_FILE}.repair.tmp`);
  await fs.writeFile(head, bytes.subarray(0, cut), { mode: 0o600 });
  let prev = CHAIN_START;
  let seq = 0;
  let entries = 0;
  let epoch: number | undefined;
  const state = await safetyStore(stateFile).load();
  try {
    for await (const { line, entry, text } of readJournal(head)) {
      // A file that a rotation began carries on the chain of the file before it (journal.ts).
      if (line === 1) ({ prev, seq } = { prev: chainStartOf(entry).prev, seq: chainStartOf(entry).seq - 1 });
      if (entry.prev !== prev || entry.seq !== seq + 1) {
        throw new FedError('SIGNER_JOURNAL_BROKEN', `journal ${file} line ${line} does not chain (prev or seq): it is damaged or edited, not torn; keep it as evidence and investigate (verify-journal)`, { file, line });
      }
      // 2. The state is this journal's and not behind it.
      epoch = epochAfter(entry, epoch);
      const why = behind(state, entry, epoch);
      if (why) {
        throw new FedError('SIGNER_STATE_BEHIND', `safety state ${stateFile} does not cover journal ${file}: ${why}. The state was lost, restored from an older copy or belongs elsewhere; import the newest export (import-state) before repairing`, { file, line });
      }
      prev = sha256Hex(text);
      seq = entry.seq;
      entries++;
    }
  } finally {
    await fs.rm(head, { force: true });
  }
  if (cut === bytes.length) return { repaired: false, entries };
  // 3. The torn tail, kept.
  const tail = bytes.subarray(cut);
  const tornSha256 = sha256Hex(tail);
  const backup = await backupName(file, now);
  await writeFileAtomic(backup, tail, { mode: 0o600 });
  // 4. The journal: complete lines + a repair record, replaced atomically.
  const record: JournalEntry = {
    seq: seq + 1, at: now.toISOString(), prev, type: 'repair', reason: 'torn last line moved aside',
    backup: path.basename(backup), tornBytes: tail.length, tornSha256,
    ...(state ? { lastVote: state.lastVote, lastProposalView: state.lastProposalView, lastNewView: state.lastNewView, locked: state.locked, signed: state.signed } : { state: 'none' }),
  };
  const tmp = path.join(dataDir, `.${JOURNAL_FILE}.repaired.tmp`);
  await fs.copyFile(file, tmp);
  const handle = await fs.open(tmp, 'r+');
  try {
    await handle.truncate(cut);
    await handle.write(`${JSON.stringify(record)}\n`, cut);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.chmod(tmp, 0o600);
  await fs.rename(tmp, file);
  await fsyncDir(dataDir);
  return { repaired: true, entries, backup, tornBytes: tail.length, tornSha256 };
}
