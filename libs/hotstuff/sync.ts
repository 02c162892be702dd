// Block sync and commit: fetch blocks a valid QC refers to but this member lacks, accept
// fetched blocks only when they hash-link to something asked for, and commit a commitQC's
// block with its uncommitted ancestors — parents first, each exactly once. A block at a
// committed height that differs from ours halts the engine (proof of more than f faults).
// Must never commit a block whose ancestry down to the committed tip is not known.

import { bytesEqual, shortHex, toHex } from './bytes.ts';
import type { EngineCore } from './core.ts';
import { Phase, type Block, type Hash, type QuorumCert } from './types.ts';

/**
 * Ask `from` for a block unless it is known. A block already asked of someone else is asked of
 * `from` too: `from` has just referred to it in a signed message (a proposal on it, a QC of it),
 * so it holds it, while the member asked first may have died since. One fetch per change of
 * member, so a sender repeating itself costs nothing.
 */
export function want(core: EngineCore, hash: Hash, from: number): void {
  const hex = toHex(hash);
  if (core.tree.get(hex)) return;
  const asked = core.wanted.get(hex);
  if (asked) {
    if (from === core.self || from === asked.from) return;
    asked.from = from;
    core.emitOutbound({ type: 'fetch', hash, from, aboveHeight: core.tree.committed.header.height });
    return;
  }
  const target = from === core.self ? (from + 1) % core.n : from;
  core.wanted.set(hex, { hash, from: target, attempts: 0 });
  core.emitOutbound({ type: 'fetch', hash, from: target, aboveHeight: core.tree.committed.header.height });
}

/** A block nobody could serve after this many rounds is dropped (a dead fork, say). */
const MAX_FETCH_ROUNDS_PER_MEMBER = 2;

/** On each failed view (our timeout, or a quorum of NEW-VIEWs moving us on), ask someone else for what is still missing. */
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

/** Blocks from a fetch; `sender` (the validator that served them, if known) is blamed for invalid ones. */
export function onBlocksFetched(core: EngineCore, blocks: Block[], qcs: QuorumCert[], sender?: number): void {
  // QCs first: a block certified by a QC in the response may be accepted unasked (catch-up
  // responses carry committed blocks upward from our committed tip with their QCs).
  const valid: QuorumCert[] = [];
  for (const qc of qcs) {
    const checked = core.qcs.check(qc);
    if (!checked.ok) core.reject(sender ?? null, 'invalid_qc', `fetched: ${checked.why}`);
    else valid.push(checked.qc);
  }
  const before = core.tree.committed.header.height;
  const { accepted, top } = acceptLinked(core, blocks, valid, sender);
  if (accepted < blocks.length) core.reject(null, 'unsolicited', `${blocks.length - accepted} fetched blocks not accepted`);
  // Keep every valid QC of a block we now hold, so this member can serve the block on with it:
  // a requester links served blocks only through QCs, and one that caught up without them
  // would serve runs of uncertified blocks that nobody can connect.
  for (const qc of valid) if (core.tree.get(toHex(qc.blockHash))) core.storeQc(qc);
  for (const qc of valid) {
    if (core.ended) return; // the epoch ended with one of these commits: nothing more to ask or vote for
    if (qc.phase === Phase.PREPARE) core.notePrepareQC(qc);
    if (qc.phase === Phase.COMMIT) commitWith(core, qc, core.leaderOf(qc.view));
  }
  resume(core);
  if (core.ended) return;
  // A partial answer that extended our chain from the committed tip: ask again for what is
  // still missing, from the highest block it connected (a catch-up walks upward this way).
  const above = Math.max(core.tree.committed.header.height, top);
  if (above > before) {
    for (const w of core.wanted.values()) {
      w.attempts = 0; // progress: a long catch-up must not run out of retry rounds
      core.emitOutbound({ type: 'fetch', hash: w.hash, from: w.from, aboveHeight: above });
    }
  }
}

/**
 * This very block is in the committed log, so its content check would fail on the log itself
 * (its transactions are in it), which says nothing against whoever sent it. Only a block at or
 * below the committed height can be (checked first, for free); a different block there is no
 * excuse. The caller has checked the block's hash against its header.
 */
export function committedHere(core: EngineCore, block: Block): boolean {
  return block.header.height <= core.tree.committed.header.height && core.deps.isCommittedBlock?.(block.hash, block.header.height) === true;
}

/** Why `block` (whose parent may be unknown) is invalid, or null; the ancestors come from the tree. */
export function contentError(core: EngineCore, block: Block, parent: Block | undefined): string | null {
  if (parent && block.txs.length > 0 && inSuffix(core, parent)) {
    return `carries ${block.txs.length} transactions above the block that ends epoch ${core.epoch} (the epoch's suffix is empty)`;
  }
  const check = core.deps.checkBlock;
  if (!check) return null;
  const ancestors: Block[] = [];
  const committed = core.tree.committed.header.height;
  let cur = parent;
  while (cur && cur.header.height > committed) {
    ancestors.push(cur);
    cur = core.tree.get(toHex(cur.header.parentHash));
  }
  return check(block, parent, ancestors);
}

/**
 * Accept blocks that hash-link to a wanted hash or to a block certified by one of `qcs`
 * (walking parent links within the response), lowest first, each only once its content holds.
 * A block whose parent is still unknown is checked without it and re-checked when the parent
 * is stored (see recheckChild): the state hash is never skipped for good.
 */
function acceptLinked(core: EngineCore, blocks: Block[], qcs: readonly QuorumCert[], sender?: number): { accepted: number; top: number } {
  // Who is blamed for a bad block: the validator that served it; without one, whom we asked.
  const blame = (from: number): number => sender ?? from;
  const byHex = new Map<string, Block>();
  for (const b of blocks) byHex.set(toHex(b.hash), b);
  const seeds = new Map<string, number>();
  for (const [hex, w] of core.wanted) seeds.set(hex, w.from);
  for (const qc of qcs) {
    const hex = toHex(qc.blockHash);
    if (!seeds.has(hex)) seeds.set(hex, core.leaderOf(qc.view));
  }
  const linked: { b: Block; hex: string; from: number }[] = [];
  for (let progress = true; progress; ) {
    progress = false;
    for (const [hex, b] of byHex) {
      const from = seeds.get(hex);
      if (from === undefined) continue;
      byHex.delete(hex);
      if (core.tree.get(hex)) continue;
      if (b.header.chainId !== core.config.chainId || !bytesEqual(core.deps.hashBlock(b.header), b.hash)) {
        core.reject(blame(from), 'invalid_block', `fetched block ${shortHex(b.hash)} does not match its hash`);
        continue;
      }
      linked.push({ b, hex, from });
      progress = true;
      const parentHex = toHex(b.header.parentHash);
      if (!core.tree.get(parentHex) && !seeds.has(parentHex)) seeds.set(parentHex, from);
    }
  }
  linked.sort((x, y) => x.b.header.height - y.b.header.height);
  let accepted = 0;
  let top = 0;
  const parents: { hash: Hash; from: number }[] = [];
  for (const { b, hex, from } of linked) {
    const parentHex = toHex(b.header.parentHash);
    const parent = core.tree.get(parentHex);
    if (committedHere(core, b)) {
      // Committed here since it was asked for (another answer came first): one key read instead
      // of a content check that would fail on the log holding its transactions. Nobody to
      // blame, nothing left to fetch.
      core.wanted.delete(hex);
      core.reject(null, 'stale', `fetched block ${shortHex(b.hash)} at height ${b.header.height}, committed up to ${core.tree.committed.header.height}`);
      continue;
    }
    const bad = contentError(core, b, parent);
    if (bad) {
      // Kept wanted: the next retry asks someone else.
      core.reject(blame(from), 'invalid_block', `fetched block ${shortHex(b.hash)}: ${bad}`);
      continue;
    }
    core.wanted.delete(hex);
    storeChecked(core, b, hex);
    accepted++;
    if (parent && (parent.header.height === core.tree.committed.header.height || parent.header.height === top)) top = b.header.height;
    if (!parent && b.header.height - 1 > core.tree.committed.header.height) {
      core.uncheckedChild.set(parentHex, { hex, from: sender ?? null });
      parents.push({ hash: b.header.parentHash, from });
    }
  }
  // Ancestors the answer did not include are asked for explicitly.
  for (const p of parents) if (!core.tree.get(toHex(p.hash))) want(core, p.hash, p.from);
  return { accepted, top };
}

/** Store a block whose content was checked, then re-check a child that waited for it. */
function storeChecked(core: EngineCore, b: Block, hex: string): void {
  core.storeBlock(b, hex);
  const waiting = core.uncheckedChild.get(hex);
  if (waiting === undefined) return;
  core.uncheckedChild.delete(hex);
  const child = core.tree.get(waiting.hex);
  if (!child) return;
  const bad = contentError(core, child, b);
  if (bad) {
    // Stored (and persisted) before its parent came: out of the tree and off the disk.
    core.dropBlock(child, waiting.hex);
    core.reject(waiting.from, 'invalid_block', `fetched block ${shortHex(child.hash)} once its parent was known: ${bad}`);
  }
}

/** Retry what was waiting for blocks: a commit, a proposal, a leader's parent. */
function resume(core: EngineCore): void {
  const pending = core.pendingCommit;
  if (pending) commitWith(core, pending, core.self);
  if (core.ended) return;
  const waiting = core.round.waiting;
  if (waiting && waiting.view === core.view) {
    core.round.waiting = null;
    core.resumeProposal(waiting);
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

function applyCommit(core: EngineCore, path: Block[], qc: QuorumCert): void {
  // The epoch ends with the first block that carries a reconfiguration: the empty blocks of its
  // suffix above it are certified but never committed, whichever commitQC a member saw first.
  const end = core.deps.endsEpoch ? path.findIndex((b) => core.deps.endsEpoch!(b)) : -1;
  const blocks = end < 0 ? path : path.slice(0, end + 1);
  const tip = blocks[blocks.length - 1]!;
  // The commitQC is not part of the safety state: stored explicitly, durable before the commit.
  core.storeQc(qc);
  core.emitOutbound({ type: 'commit', blocks, qc });
  for (const b of blocks) if (b.header.epoch === core.epoch) core.schedule.committed(b.header);
  core.deps.metrics?.increment('blocks_committed', blocks.length);
  core.tree.markCommitted(tip);
  // A commit uses up the driver's word that it has work (idle.ts): its mempool just lost what the
  // blocks held, and a heartbeat is met. It says again, after the commit, if work remains.
  core.workAvailable = false;
  // Only after the commit action: persisted earlier, a crash before the commit would leave
  // these blocks uncommittable with this QC (commitWith ignores views ≤ lastCommitView).
  if (qc.view > core.safety.lastCommitView) core.safety.lastCommitView = qc.view;
  core.committedHere = true;
  if (core.pendingCommit && core.pendingCommit.view <= qc.view) core.pendingCommit = null;
  pruneBelowNeeds(core);
  if (end >= 0) {
    core.ended = true;
    core.out.push({ type: 'epoch-ended', epoch: core.epoch, last: tip, qc, suffix: path.slice(end + 1) });
    core.deps.metrics?.increment('epochs_ended');
  }
}

/**
 * Does a block on `parent` belong to the epoch's suffix: is `parent`, or one of its uncommitted
 * ancestors, the block that ends the epoch? Such a block must carry no transactions.
 */
export function inSuffix(core: EngineCore, parent: Block): boolean {
  const ends = core.deps.endsEpoch;
  if (!ends) return false;
  const committed = core.tree.committed.header.height;
  for (let cur: Block | undefined = parent; cur && cur.header.height > committed; cur = core.tree.get(toHex(cur.header.parentHash))) {
    if (ends(cur)) return true;
  }
  return false;
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
