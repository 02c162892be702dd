// Block sync and commit: fetch blocks a valid QC refers to but this member lacks, accept
// fetched blocks only when they hash-link to something asked for, and commit a commitQC's
// block with its uncommitted ancestors — parents first, each exactly once. A block at a
// committed height that differs from ours halts the engine (proof of more than f faults).
// Must never commit a block whose ancestry down to the committed tip is not known.

import { bytesEqual, shortHex, toHex } from './bytes.ts';
import type { EngineCore } from './core.ts';
import { considerProposal } from './replica.ts';
import { Phase, type Block, type Hash, type QuorumCert } from './types.ts';

/** Ask for a block unless it is known or already asked for. */
export function want(core: EngineCore, hash: Hash, from: number): void {
  const hex = toHex(hash);
  if (core.tree.get(hex) || core.wanted.has(hex)) return;
  const target = from === core.self ? (from + 1) % core.n : from;
  core.wanted.set(hex, { hash, from: target, attempts: 0 });
  core.emitOutbound({ type: 'fetch', hash, from: target, aboveHeight: core.tree.committed.header.height });
}

/** A block nobody could serve after this many rounds is dropped (a dead fork, say). */
const MAX_FETCH_ROUNDS_PER_MEMBER = 2;

/** On each timeout, ask someone else for what is still missing. */
export function retryFetches(core: EngineCore): void {
  for (const [hex, w] of core.wanted) {
    if (++w.attempts > MAX_FETCH_ROUNDS_PER_MEMBER * core.n + 2) {
      core.wanted.delete(hex);
      continue;
    }
    w.from = (w.from + 1) % core.n;
    if (w.from === core.self) w.from = (w.from + 1) % core.n;
    if (w.from === core.self) continue; // N = 1: nobody to ask
    core.emitOutbound({ type: 'fetch', hash: w.hash, from: w.from, aboveHeight: core.tree.committed.header.height });
  }
}

export function onBlocksFetched(core: EngineCore, blocks: Block[], qcs: QuorumCert[]): void {
  const accepted = acceptLinked(core, blocks);
  if (accepted < blocks.length) core.reject(null, 'unsolicited', `${blocks.length - accepted} fetched blocks not asked for`);
  for (const qc of qcs) {
    const checked = core.qcs.check(qc);
    if (!checked.ok) {
      core.reject(null, 'invalid_qc', `fetched: ${checked.why}`);
      continue;
    }
    if (checked.qc.phase === Phase.PREPARE) core.notePrepareQC(checked.qc);
    if (checked.qc.phase === Phase.COMMIT) commitWith(core, checked.qc, core.leaderOf(checked.qc.view));
  }
  resume(core);
}

/** Accept blocks that hash-link to a wanted hash, repeatedly (a chain may come in any order). */
function acceptLinked(core: EngineCore, blocks: Block[]): number {
  const byHex = new Map<string, Block>();
  for (const b of blocks) byHex.set(toHex(b.hash), b);
  const parents: { hash: Hash; from: number }[] = [];
  let accepted = 0;
  for (let progress = true; progress; ) {
    progress = false;
    for (const [hex, b] of byHex) {
      const w = core.wanted.get(hex);
      if (!w) continue;
      byHex.delete(hex);
      if (b.header.chainId !== core.config.chainId || !bytesEqual(core.deps.hashBlock(b.header), b.hash)) {
        core.reject(w.from, 'invalid_block', `fetched block ${shortHex(b.hash)} does not match its hash`);
        continue;
      }
      core.wanted.delete(hex);
      core.storeBlock(b, hex);
      accepted++;
      progress = true;
      const parentHex = toHex(b.header.parentHash);
      if (b.header.height - 1 > core.tree.committed.header.height && !core.tree.get(parentHex)) {
        core.wanted.set(parentHex, { hash: b.header.parentHash, from: w.from, attempts: 0 });
        parents.push({ hash: b.header.parentHash, from: w.from });
      }
    }
  }
  // Ancestors the answer did not include are asked for explicitly.
  for (const p of parents) {
    const hex = toHex(p.hash);
    if (!core.wanted.has(hex)) continue;
    core.wanted.delete(hex);
    want(core, p.hash, p.from);
  }
  return accepted;
}

/** Retry what was waiting for blocks: a commit, a proposal, a leader's parent. */
function resume(core: EngineCore): void {
  const pending = core.pendingCommit;
  if (pending) commitWith(core, pending, core.self);
  const waiting = core.round.waiting;
  if (waiting && waiting.view === core.view) {
    core.round.waiting = null;
    considerProposal(core, waiting);
  }
}

/** Commit the block of a valid commitQC and its ancestors; true if anything changed. */
export function commitWith(core: EngineCore, qc: QuorumCert, from: number): boolean {
  // A commitQC no newer than the one we last committed with certifies an ancestor of our tip.
  if (core.halted || qc.view <= core.safety.lastCommitView) return false;
  const path = core.tree.commitPath(qc.blockHash);
  switch (path.kind) {
    case 'done':
      if (core.pendingCommit === qc) core.pendingCommit = null;
      return false;
    case 'missing':
      if (!core.pendingCommit || qc.view > core.pendingCommit.view) core.pendingCommit = qc;
      want(core, path.hash, from);
      return true;
    case 'conflict':
      core.halted = true;
      core.out.push({ type: 'halted', height: path.height, committed: core.tree.committed.hash, conflicting: path.conflicting });
      return true;
    case 'chain':
      applyCommit(core, path.blocks, qc);
      return true;
  }
}

function applyCommit(core: EngineCore, blocks: Block[], qc: QuorumCert): void {
  const tip = blocks[blocks.length - 1]!;
  core.storeQc(qc);
  core.emitOutbound({ type: 'commit', blocks, qc });
  core.deps.metrics?.increment('blocks_committed', blocks.length);
  core.tree.markCommitted(tip);
  if (qc.view > core.safety.lastCommitView) core.safety.lastCommitView = qc.view;
  core.markDirty();
  if (core.pendingCommit && core.pendingCommit.view <= qc.view) core.pendingCommit = null;
  pruneBelowNeeds(core);
}

/** Keep the committed tip and the blocks of lockedQC and prepareQC; drop what is older. */
function pruneBelowNeeds(core: EngineCore): void {
  let keep = core.tree.committed.header.height;
  for (const qc of [core.safety.lockedQC, core.safety.prepareQC]) {
    const b = core.tree.get(toHex(qc.blockHash));
    if (b && b.header.height < keep) keep = b.header.height;
  }
  core.tree.prune(keep);
}
