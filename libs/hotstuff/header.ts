// What a block's header must say, in one place. Every reader of a block checks its header here
// against what it knows: the engine a proposal (its view, leader and justify), block sync and the
// light client a block of a chain (its parent), the signer a request (its view, and for a proposal
// itself as the proposer). Only the expectations given are checked, cheapest first; the hash is
// recomputed last. The answer names the field, so callers that count refusals by kind (the signer's
// rules) keep their labels. Pure; must never check content (transactions, state hash): that is
// libs/blocks' blockError, which calls this first.

import { bytesEqual, toHex } from './bytes.ts';
import type { Block, BlockHeader, Hash } from './types.ts';

export interface HeaderExpect {
  chainId?: string;
  /** Recomputes the hash (absent: the caller has already checked it). */
  hashBlock?(h: BlockHeader): Hash;
  epoch?: number;
  view?: number;
  proposer?: number;
  /** The parent's hash (a proposal names it in its justify before the parent is known). */
  parentHash?: Hash;
  /** The parent itself: the link and the height right above it. */
  parent?: Block;
  /** With `parent`: the time must be after the parent's too (block validity; the engine leaves it to that). */
  timeAfterParent?: boolean;
}

export type HeaderField = 'chain-id' | 'epoch' | 'view' | 'proposer' | 'parent' | 'height' | 'timestamp' | 'hash';

export interface HeaderError {
  field: HeaderField;
  why: string;
}

const short = (h: Uint8Array) => toHex(h).slice(0, 16) + '…';

/** Why `header` (of a block whose hash is said to be `hash`) is not what `e` expects, or null. */
export function headerError(header: BlockHeader, hash: Hash, e: HeaderExpect): HeaderError | null {
  const bad = (field: HeaderField, why: string): HeaderError => ({ field, why });
  if (e.chainId !== undefined && header.chainId !== e.chainId) return bad('chain-id', `chain id ${JSON.stringify(header.chainId)} is not ${JSON.stringify(e.chainId)}`);
  if (e.epoch !== undefined && header.epoch !== e.epoch) return bad('epoch', `header epoch ${header.epoch} is not epoch ${e.epoch}`);
  if (e.view !== undefined && header.view !== e.view) return bad('view', `header view ${header.view} is not view ${e.view}`);
  if (e.proposer !== undefined && header.proposer !== e.proposer) return bad('proposer', `header proposer ${header.proposer} is not validator ${e.proposer}`);
  if (e.parentHash !== undefined && !bytesEqual(header.parentHash, e.parentHash)) {
    return bad('parent', `parent ${short(header.parentHash)} is not ${short(e.parentHash)}`);
  }
  const p = e.parent;
  if (p) {
    if (!bytesEqual(header.parentHash, p.hash)) return bad('parent', `parent ${short(header.parentHash)} is not the parent block ${short(p.hash)}`);
    if (header.height !== p.header.height + 1) return bad('height', `height ${header.height} after parent ${p.header.height}`);
    if (e.timeAfterParent && header.timestampMs <= p.header.timestampMs) return bad('timestamp', `timestamp ${header.timestampMs} is not after its parent's (${p.header.timestampMs})`);
  }
  if (e.hashBlock) {
    const own = e.hashBlock(header);
    if (!bytesEqual(own, hash)) return bad('hash', `block hash ${short(hash)} is not the hash of its header (${short(own)})`);
  }
  return null;
}

/** headerError of a block, as its reason alone, or null. */
export function blockHeaderError(block: Block, e: HeaderExpect): string | null {
  return headerError(block.header, block.hash, e)?.why ?? null;
}
