// Moving a signer between hosts: export the safety state as JSON, import it on the new host
// while the signer there is stopped. Import merges by taking maxima (last vote, last proposal,
// last new-view, the lock, the signed count; recent slots united), refuses a state that is
// behind the current one, and refuses two different signatures for one slot outright.
// The epoch history (epochs.json) travels in the export with the state — a state of epoch e is
// useless without the proofs of epochs 0..e−1, and the signer refuses to start with one and not
// the other. It is checked again from genesis on import (every approval), and merged only when one
// history extends the other; it is written before the state, so a crash between the two leaves a
// history ahead of the state, which the signer moves on from at start.
// Must never lower any high-water mark, never take a history that does not replay from this
// signer's genesis, and never run while a signer holds the data dir.

import path from 'node:path';
import { FedError, errorMessage, isFedError } from '#libs/errors/index.ts';
import { readIfExists, writeFileAtomic } from '#libs/files/index.ts';
import { toHex } from '#libs/crypto/index.ts';
import { EPOCHS_FILE, decodeEpochs, encodeEpochs, type EndedEpoch } from './epochs.ts';
import { JOURNAL_FILE, openJournal } from './journal.ts';
import { slotKey, trimRecent, type SignerSafety, type SignedSlot } from './rules.ts';
import { STATE_FILE, decodeSafety, encodeSafety, safetyStore } from './state-file.ts';

const cmp = (a: number, b: number) => Math.sign(a - b);

function voteCmp(a: SignerSafety['lastVote'], b: SignerSafety['lastVote']): number {
  return cmp(a.view, b.view) || cmp(a.phase, b.phase);
}

/** Per mark: is `a` below (-1), equal to (0) or above (1) `b`. */
function marks(a: SignerSafety, b: SignerSafety): number[] {
  return [
    voteCmp(a.lastVote, b.lastVote), cmp(a.lastProposalView, b.lastProposalView), cmp(a.lastNewView, b.lastNewView),
    cmp(a.locked.view, b.locked.view), cmp(a.signed, b.signed),
  ];
}

export type MergeResult = { kind: 'unchanged'; state: SignerSafety } | { kind: 'merged'; state: SignerSafety };

/** Pure: the merged state, or a FedError (SIGNER_IMPORT_*) saying why the import is refused. */
export function mergeSafety(current: SignerSafety | undefined, incoming: SignerSafety): MergeResult {
  if (!current) return { kind: 'merged', state: incoming };
  if (current.publicKey !== incoming.publicKey || current.chainId !== incoming.chainId) {
    throw new FedError('SIGNER_IMPORT_MISMATCH', `the imported state belongs to key ${incoming.publicKey.slice(0, 16)}… on ${incoming.chainId}, this signer is ${current.publicKey.slice(0, 16)}… on ${current.chainId}`);
  }
  // Marks of different epochs are not comparable (views restart in each epoch): the later epoch's
  // state is the whole truth, since the signer never signs for an earlier epoch again.
  if (incoming.epoch < current.epoch) {
    throw new FedError('SIGNER_IMPORT_BEHIND', `the imported state is of epoch ${incoming.epoch}, this signer is at epoch ${current.epoch}; an old export? Nothing was changed`);
  }
  if (incoming.epoch > current.epoch) return { kind: 'merged', state: incoming };
  const m = marks(incoming, current);
  if (m.every((x) => x === 0) && incoming.recent.length <= current.recent.length) return { kind: 'unchanged', state: current };
  if (m.every((x) => x <= 0) && m.some((x) => x < 0)) {
    throw new FedError('SIGNER_IMPORT_BEHIND', `the imported state is behind the current one (its last vote is view ${incoming.lastVote.view} phase ${incoming.lastVote.phase}, the current ${current.lastVote.view}/${current.lastVote.phase}); an old export? Nothing was changed`);
  }
  if (incoming.locked.view === current.locked.view && incoming.locked.blockHash !== current.locked.blockHash) {
    throw new FedError('SIGNER_IMPORT_CONFLICT', `both states are locked in view ${current.locked.view} on different blocks: this key may have signed conflicting votes`);
  }
  const slots = new Map<string, SignedSlot>();
  for (const r of [...current.recent, ...incoming.recent]) {
    const key = slotKey(r);
    const seen = slots.get(key);
    if (seen && seen.digest !== r.digest) {
      // A NEW-VIEW signed again with a newer highQC is allowed (rules.ts): keep the newer one.
      if (seen.kind === 'new-view' && seen.qcView !== undefined && r.qcView !== undefined && seen.qcView !== r.qcView) {
        slots.set(key, r.qcView > seen.qcView ? r : seen);
        continue;
      }
      throw new FedError('SIGNER_IMPORT_CONFLICT', `both states hold a signature for ${key} over different messages: this key has equivocated; keep both files as evidence`);
    }
    slots.set(key, seen ?? r);
  }
  return {
    kind: 'merged',
    state: {
      chainId: current.chainId,
      publicKey: current.publicKey,
      epoch: current.epoch,
      lastVote: voteCmp(incoming.lastVote, current.lastVote) > 0 ? incoming.lastVote : current.lastVote,
      lastProposalView: Math.max(incoming.lastProposalView, current.lastProposalView),
      lastNewView: Math.max(incoming.lastNewView, current.lastNewView),
      locked: incoming.locked.view > current.locked.view ? incoming.locked : current.locked,
      recent: trimRecent([...slots.values()]),
      signed: Math.max(incoming.signed, current.signed),
    },
  };
}

/**
 * The export: the state file's checksummed document, with the epoch history's document (when the
 * signer has seen an epoch end) as its `epochs` field. Both are checked before they are exported.
 */
export async function exportState(dataDir: string): Promise<string> {
  const file = path.join(dataDir, STATE_FILE);
  const text = await readIfExists(file);
  if (text === undefined) throw new FedError('SIGNER_STATE_MISSING', `no safety state at ${file} to export`, { file });
  const state = JSON.parse(encodeSafety(decodeSafety(text, file))) as Record<string, unknown>;
  const epochsFile = path.join(dataDir, EPOCHS_FILE);
  const history = await readIfExists(epochsFile);
  if (history === undefined) return `${JSON.stringify(state, null, 1)}\n`;
  return `${JSON.stringify({ ...state, epochs: JSON.parse(encodeEpochs(decodeEpochs(history, epochsFile))) as unknown }, null, 1)}\n`;
}

/** An export's two parts: the state document's text, and the history's (undefined in an export without one). */
function splitExport(text: string, file: string): { state: string; epochs: string | undefined } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { state: text, epochs: undefined }; // decodeSafety names the problem
  }
  if (raw === null || typeof raw !== 'object' || !('epochs' in raw)) return { state: text, epochs: undefined };
  const { epochs, ...state } = raw as Record<string, unknown>;
  if (epochs === null || typeof epochs !== 'object') {
    throw new FedError('SIGNER_IMPORT_INVALID', `${file}: field epochs must be an epoch history document; nothing was changed`, { file, field: 'epochs' });
  }
  return { state: JSON.stringify(state), epochs: JSON.stringify(epochs) };
}

const sameEnd = (a: EndedEpoch, b: EndedEpoch): boolean =>
  a.height === b.height && toHex(a.root) === toHex(b.root) && toHex(a.tx) === toHex(b.tx);

/**
 * Pure: the history to keep — the longer of the two when one extends the other — or
 * SIGNER_IMPORT_CONFLICT when they disagree about an epoch's end (two chains, or a forged file).
 */
export function mergeEpochs(current: readonly EndedEpoch[], incoming: readonly EndedEpoch[]): { kind: 'unchanged' | 'merged'; ended: readonly EndedEpoch[] } {
  for (let i = 0; i < Math.min(current.length, incoming.length); i++) {
    const [a, b] = [current[i]!, incoming[i]!];
    if (!sameEnd(a, b)) {
      throw new FedError('SIGNER_IMPORT_CONFLICT',
        `the export's epoch history disagrees with this signer's about the end of epoch ${i} (here: height ${a.height}, block ${toHex(a.root).slice(0, 16)}…; export: height ${b.height}, block ${toHex(b.root).slice(0, 16)}…): they are not one chain's history; nothing was changed`,
        { epoch: i });
    }
  }
  return incoming.length > current.length ? { kind: 'merged', ended: incoming } : { kind: 'unchanged', ended: current };
}

export interface ImportResult { kind: MergeResult['kind']; state: SignerSafety; epochsEnded: number }

/**
 * Merges an export into the data dir's state and epoch history (creating them on a new host) and
 * journals the import. `publicKey` is this host's key (hex): a state of another key is refused.
 * `replay` checks a history from this signer's genesis (SignerEpochs.replay), throwing when it
 * does not follow. The caller holds the data-dir lock, which proves no signer is running.
 */
export async function importState(dataDir: string, exportText: string, exportFile: string, publicKey: string,
  replay: (ended: EndedEpoch[], file: string) => void): Promise<ImportResult> {
  const parts = splitExport(exportText, exportFile);
  const incoming = decodeSafety(parts.state, exportFile);
  if (incoming.publicKey !== publicKey) {
    throw new FedError('SIGNER_IMPORT_MISMATCH', `${exportFile} is the state of key ${incoming.publicKey.slice(0, 16)}…, this host's key is ${publicKey.slice(0, 16)}…`);
  }
  let incomingEnded: EndedEpoch[] = [];
  if (parts.epochs !== undefined) {
    try {
      incomingEnded = decodeEpochs(parts.epochs, exportFile);
      replay(incomingEnded, exportFile);
    } catch (err) {
      const why = isFedError(err) && typeof err.details.why === 'string' ? err.details.why : errorMessage(err);
      throw new FedError('SIGNER_IMPORT_INVALID', `${exportFile}: its epoch history cannot be taken: ${why}; nothing was changed`, { file: exportFile, why }, { cause: err });
    }
  }
  const epochsFile = path.join(dataDir, EPOCHS_FILE);
  const here = await readIfExists(epochsFile);
  const epochs = mergeEpochs(here === undefined ? [] : decodeEpochs(here, epochsFile), incomingEnded);
  const store = safetyStore(path.join(dataDir, STATE_FILE));
  const current = await store.load();
  const result = mergeSafety(current, incoming);
  if (result.state.epoch > epochs.ended.length) {
    throw new FedError('SIGNER_IMPORT_INVALID',
      `${exportFile} is a state of epoch ${result.state.epoch}, but the epoch history (${parts.epochs === undefined ? 'the export carries none' : 'the export\'s'}, and this signer's) reaches epoch ${epochs.ended.length} only: export the state again with this version, which carries the history; nothing was changed`,
      { file: exportFile, epoch: result.state.epoch, historyEpoch: epochs.ended.length });
  }
  // The history first: a crash before the state is written leaves a history ahead of the state.
  if (epochs.kind === 'merged') await writeFileAtomic(epochsFile, encodeEpochs(epochs.ended), { mode: 0o600 });
  if (result.kind === 'unchanged') return { kind: epochs.kind, state: result.state, epochsEnded: epochs.ended.length };
  const journal = await openJournal(path.join(dataDir, JOURNAL_FILE), { create: current === undefined });
  try {
    await journal.append({ type: 'import', from: exportFile, epoch: result.state.epoch, lastVote: result.state.lastVote, locked: result.state.locked,
      lastProposalView: result.state.lastProposalView, lastNewView: result.state.lastNewView, signed: result.state.signed });
    await store.save(result.state);
  } finally {
    await journal.close();
  }
  return { kind: 'merged', state: result.state, epochsEnded: epochs.ended.length };
}
