// Three-way merge of peer lists: the store's in-memory list ("ours", which includes API
// updates) against a hand-edited peers.yaml ("theirs"), relative to the version the editor
// most likely started from ("base"). Pure functions, no I/O.
//
// Why not simply "base = the last version we wrote": an editor that loaded the file before an
// API update and saved after it would then look like it deleted the API's new peer. So the store
// keeps its recent versions and takes as base the one closest to the edited file; an entry
// the editor never saw is then an addition of ours, not a deletion of theirs.
//
// Per peer id, with "changed" meaning different from base:
//   only one side changed            → that side
//   both changed (or both added)     → the newer last_seen wins; a tie goes to the hand edit
//   removed on one side, unchanged on the other → removed
//   removed on one side, changed on the other   → kept, as changed (an update beats a removal)

import type { Peer } from '#libs/config/index.ts';

export type PeerMap = ReadonlyMap<string, Peer>;

export function toPeerMap(peers: Iterable<Peer>): Map<string, Peer> {
  return new Map([...peers].map((p) => [p.peerId, p]));
}

export function samePeer(a: Peer | undefined, b: Peer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.publicKey === b.publicKey && a.lastSeenMs === b.lastSeenMs
    && a.addresses.length === b.addresses.length && a.addresses.every((x, i) => x === b.addresses[i]);
}

export function samePeers(a: PeerMap, b: PeerMap): boolean {
  if (a.size !== b.size) return false;
  for (const [id, p] of a) if (!samePeer(p, b.get(id))) return false;
  return true;
}

/** How many peer ids differ between two lists (added, removed or changed). */
export function distance(a: PeerMap, b: PeerMap): number {
  let n = 0;
  for (const [id, p] of a) if (!samePeer(p, b.get(id))) n++;
  for (const id of b.keys()) if (!a.has(id)) n++;
  return n;
}

/** The recent version closest to `theirs`; among equals, the newest. `history` is oldest first. */
export function chooseBase(history: readonly PeerMap[], theirs: PeerMap): PeerMap {
  let best: PeerMap = new Map();
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const version of history) {
    const d = distance(version, theirs);
    if (d <= bestDistance) {
      best = version;
      bestDistance = d;
    }
  }
  return best;
}

export interface MergeResult {
  peers: Map<string, Peer>;
  added: string[];
  removed: string[];
  updated: string[];
}

function pick(ours: Peer, theirs: Peer): Peer {
  return ours.lastSeenMs > theirs.lastSeenMs ? ours : theirs;
}

export function mergePeers(base: PeerMap, ours: PeerMap, theirs: PeerMap): Map<string, Peer> {
  const out = new Map<string, Peer>();
  const ids = new Set([...base.keys(), ...ours.keys(), ...theirs.keys()]);
  for (const id of ids) {
    const b = base.get(id);
    const o = ours.get(id);
    const t = theirs.get(id);
    const oChanged = !samePeer(o, b);
    const tChanged = !samePeer(t, b);
    let result: Peer | undefined;
    if (!oChanged) result = t;
    else if (!tChanged) result = o;
    else if (o && t) result = pick(o, t);
    else result = o ?? t; // one side removed, the other changed: the change wins
    if (result) out.set(id, result);
  }
  return out;
}

/** What changed from `before` to `after`, as sorted peer ids. */
export function diffPeers(before: PeerMap, after: PeerMap): Omit<MergeResult, 'peers'> {
  const added: string[] = [];
  const removed: string[] = [];
  const updated: string[] = [];
  for (const [id, p] of after) {
    const prev = before.get(id);
    if (!prev) added.push(id);
    else if (!samePeer(prev, p)) updated.push(id);
  }
  for (const id of before.keys()) if (!after.has(id)) removed.push(id);
  return { added: added.sort(), removed: removed.sort(), updated: updated.sort() };
}
