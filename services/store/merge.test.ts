import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Peer } from '#libs/config/index.ts';
import { chooseBase, diffPeers, mergePeers, toPeerMap } from './merge.ts';

const peer = (id: string, lastSeenMs = 0, addresses = [`/ip4/10.0.0.1/tcp/${id.length + 4000}`]): Peer =>
  ({ peerId: id, publicKey: `key-${id}`, addresses, lastSeenMs });
const ids = (m: Map<string, Peer>) => [...m.keys()].sort();

test('additions on both sides are kept', () => {
  const base = toPeerMap([peer('a')]);
  const merged = mergePeers(base, toPeerMap([peer('a'), peer('x')]), toPeerMap([peer('a'), peer('y')]));
  assert.deepEqual(ids(merged), ['a', 'x', 'y']);
});

test('a removal on one side applies when the other side left the peer alone', () => {
  const base = toPeerMap([peer('a'), peer('b')]);
  assert.deepEqual(ids(mergePeers(base, base, toPeerMap([peer('a')]))), ['a']);
  assert.deepEqual(ids(mergePeers(base, toPeerMap([peer('b')]), base)), ['b']);
});

test('an update beats a removal', () => {
  const base = toPeerMap([peer('a', 1)]);
  const merged = mergePeers(base, toPeerMap([peer('a', 5)]), new Map());
  assert.equal(merged.get('a')?.lastSeenMs, 5);
});

test('both sides changed one peer: newer last_seen wins, a tie goes to the hand edit', () => {
  const base = toPeerMap([peer('a', 1)]);
  const ours = toPeerMap([peer('a', 9, ['/ip4/1.1.1.1/tcp/1'])]);
  const theirs = toPeerMap([peer('a', 3, ['/ip4/2.2.2.2/tcp/2'])]);
  assert.deepEqual(mergePeers(base, ours, theirs).get('a')?.addresses, ['/ip4/1.1.1.1/tcp/1']);
  const tie = toPeerMap([peer('a', 9, ['/ip4/3.3.3.3/tcp/3'])]);
  assert.deepEqual(mergePeers(base, ours, tie).get('a')?.addresses, ['/ip4/3.3.3.3/tcp/3']);
});

test('an editor that saved a stale copy does not delete what the API added meanwhile', () => {
  const v1 = toPeerMap([peer('a')]);
  const v2 = toPeerMap([peer('a'), peer('x')]); // the API added x after the editor loaded v1
  const edited = toPeerMap([peer('a'), peer('y')]); // the editor added y to v1
  const base = chooseBase([v1, v2], edited);
  assert.equal(base, v1);
  assert.deepEqual(ids(mergePeers(base, v2, edited)), ['a', 'x', 'y']);
  // while a real deletion by an editor who saw x still applies
  const deleted = toPeerMap([peer('a')]);
  const later = toPeerMap([peer('a'), peer('x'), peer('z')]);
  assert.equal(chooseBase([v1, v2, later], toPeerMap([peer('a'), peer('z')])), later);
  assert.deepEqual(ids(mergePeers(later, later, toPeerMap([peer('a'), peer('z')]))), ['a', 'z']);
  assert.deepEqual(ids(mergePeers(v2, v2, deleted)), ['a']);
});

test('diffPeers names added, removed and updated ids', () => {
  const d = diffPeers(toPeerMap([peer('a'), peer('b', 1)]), toPeerMap([peer('b', 2), peer('c')]));
  assert.deepEqual(d, { added: ['c'], removed: ['a'], updated: ['b'] });
});
