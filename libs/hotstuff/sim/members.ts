// A simulated member instance: its engine (none while crashed or silent), its durable disk
// (what `persist` and `commit` actions wrote — all a restart gets back), and the driver
// chores the service would do: building payloads and serving block fetches.
// Must never let an engine see anything that is not on its disk after a restart.

import { toHex } from '../bytes.ts';
import { createEngine, restoreEngine, type HotStuffEngine } from '../engine.ts';
import type { EngineConfig, SafetyState } from '../events.ts';
import { genesisBlock } from '../genesis.ts';
import type { Block, Hash } from '../types.ts';
import { historyViews, type CommittedView } from '../schedule.ts';
import type { ByzantineKind } from './scenario.ts';
import type { SimScheme } from './schemes.ts';

export interface Disk {
  safety: SafetyState | null;
  blocks: Map<string, Block>;
  committed: Block;
}

export interface Member {
  id: number;
  identity: number;
  byzantine: ByzantineKind | null;
  honest: boolean;
  engine: HotStuffEngine | null;
  /** Bumped on crash: events addressed to an earlier life are dropped. */
  epoch: number;
  /** Bumped on each set-timer: only the latest timer fires. */
  timerGen: number;
  disk: Disk;
  commitsAfterHeal: number;
}

const enc = new TextEncoder();

export function newMember(id: number, identity: number, byzantine: ByzantineKind | null, honest: boolean, genesis: Block): Member {
  const blocks = new Map<string, Block>([[toHex(genesis.hash), genesis]]);
  return { id, identity, byzantine, honest, engine: null, epoch: 0, timerGen: 0, disk: { safety: null, blocks, committed: genesis }, commitsAfterHeal: 0 };
}

/**
 * The committed record on disk the leader schedule starts from (schedule.ts): the committed
 * chain's blocks of the epoch within historyViews(N) views of its tip, oldest first.
 */
export function diskHistory(d: Disk, epoch: number, n: number): CommittedView[] {
  const out: CommittedView[] = [];
  const tipView = d.committed.header.view;
  for (let b: Block | undefined = d.committed; b && b.header.height > 0 && b.header.epoch === epoch; b = d.blocks.get(toHex(b.header.parentHash))) {
    if (b.header.view <= tipView - historyViews(n)) break;
    out.push({ view: b.header.view, proposer: b.header.proposer });
  }
  return out.reverse();
}

/** Start (or restart from disk) the member's engine. */
export function boot(m: Member, given: EngineConfig, scheme: SimScheme): HotStuffEngine {
  const deps = { hashBlock: scheme.hashBlock, verify: scheme.verify };
  const d = m.disk;
  const config = { ...given, history: diskHistory(d, given.epoch ?? 0, given.validatorCount) };
  if (!d.safety) return (m.engine = createEngine(config, deps));
  const above = [...d.blocks.values()].filter((b) => b.header.height > d.committed.header.height);
  return (m.engine = restoreEngine(config, deps, { safety: d.safety, committed: d.committed, blocks: above }));
}

export function buildBlock(
  scheme: SimScheme,
  chainId: string,
  proposer: number,
  tag: string,
  view: number,
  parentHash: Hash,
  parentHeight: number,
  parentStateHash: Hash,
  nowMs: number,
  epoch = 0,
  /** A block of an epoch's suffix (request-payload `empty`): no transactions. */
  empty = false,
): Block {
  const txs = empty ? [] : [enc.encode(`tx|${tag}|${epoch}|${view}`)];
  const txRoot = scheme.digest(...txs);
  const header = {
    chainId,
    epoch,
    height: parentHeight + 1,
    view,
    parentHash,
    proposer,
    timestampMs: Math.floor(nowMs),
    txRoot,
    stateHash: scheme.digest(parentStateHash, txRoot),
  };
  return { header, hash: scheme.hashBlock(header), txs };
}

/** What a peer's block store answers to a fetch: the block and its ancestors above a height. */
export function serveFetch(disk: Disk, hash: Hash, aboveHeight: number, limit = 64): Block[] {
  const out: Block[] = [];
  let b = disk.blocks.get(toHex(hash));
  while (b && b.header.height > aboveHeight && out.length < limit) {
    out.push(b);
    b = disk.blocks.get(toHex(b.header.parentHash));
  }
  return out;
}

export function genesisFor(chainId: string, scheme: SimScheme): Block {
  return genesisBlock(chainId, scheme.hashBlock);
}
