// Moving a signer between hosts: export the safety state as JSON, import it on the new host
// while the signer there is stopped. Import merges by taking maxima (last vote, last proposal,
// last new-view, the lock, the signed count; recent slots united), refuses a state that is
// behind the current one, and refuses two different signatures for one slot outright.
// Must never lower any high-water mark, and never run while a signer holds the data dir.

import path from 'node:path';
import { FedError } from '#libs/errors/index.ts';
import { readIfExists } from '#libs/files/index.ts';
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

/** The state file's text as an export (the same checksummed format). */
export async function exportState(dataDir: string): Promise<string> {
  const file = path.join(dataDir, STATE_FILE);
  const text = await readIfExists(file);
  if (text === undefined) throw new FedError('SIGNER_STATE_MISSING', `no safety state at ${file} to export`, { file });
  return encodeSafety(decodeSafety(text, file));
}

/**
 * Merges an export into the data dir's state (creating it on a new host) and journals the import.
 * `publicKey` is this host's key (hex): a state of another key is refused. The caller holds the
 * data-dir lock, which proves no signer is running.
 */
export async function importState(dataDir: string, exportText: string, exportFile: string, publicKey: string): Promise<MergeResult> {
  const incoming = decodeSafety(exportText, exportFile);
  if (incoming.publicKey !== publicKey) {
    throw new FedError('SIGNER_IMPORT_MISMATCH', `${exportFile} is the state of key ${incoming.publicKey.slice(0, 16)}…, this host's key is ${publicKey.slice(0, 16)}…`);
  }
  const store = safetyStore(path.join(dataDir, STATE_FILE));
  const current = await store.load();
  const result = mergeSafety(current, incoming);
  if (result.kind === 'unchanged') return result;
  const journal = await openJournal(path.join(dataDir, JOURNAL_FILE), { create: current === undefined });
  try {
    await journal.append({ type: 'import', from: exportFile, lastVote: result.state.lastVote, locked: result.state.locked,
      lastProposalView: result.state.lastProposalView, lastNewView: result.state.lastNewView, signed: result.state.signed });
    await store.save(result.state);
  } finally {
    await journal.close();
  }
  return result;
}
