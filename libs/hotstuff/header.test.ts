// headerError (header.ts): each expectation given is checked and named by its field, cheapest
// first with the hash last; an expectation not given is not checked.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { genesisBlock } from './genesis.ts';
import { headerError, type HeaderExpect } from './header.ts';
import type { Block, BlockHeader } from './types.ts';

const hashBlock = (h: BlockHeader) => new Uint8Array(createHash('sha256').update(JSON.stringify(h, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))).digest());
const parent = genesisBlock('c', hashBlock);
const child = (patch: Partial<BlockHeader> = {}): Block => {
  const header: BlockHeader = { ...parent.header, height: 1, view: 3, proposer: 2, parentHash: parent.hash, timestampMs: parent.header.timestampMs + 1, ...patch };
  return { header, hash: hashBlock(header), txs: [] };
};
const all: HeaderExpect = { chainId: 'c', hashBlock, epoch: 0, view: 3, proposer: 2, parentHash: parent.hash, parent, timeAfterParent: true };
const fieldOf = (b: Block, e: HeaderExpect = all) => headerError(b.header, b.hash, e)?.field ?? null;

test('a header that says what is expected passes', () => {
  assert.equal(fieldOf(child()), null);
});

test('each wrong field is named', () => {
  assert.equal(fieldOf(child({ chainId: 'd' })), 'chain-id');
  assert.equal(fieldOf(child({ epoch: 1 })), 'epoch');
  assert.equal(fieldOf(child({ view: 4 })), 'view');
  assert.equal(fieldOf(child({ proposer: 1 })), 'proposer');
  assert.equal(fieldOf(child({ parentHash: new Uint8Array(32) })), 'parent');
  assert.equal(fieldOf(child({ height: 2 })), 'height');
  assert.equal(fieldOf(child({ timestampMs: parent.header.timestampMs })), 'timestamp');
  assert.equal(fieldOf({ ...child(), hash: parent.hash }), 'hash');
  assert.match(headerError(child({ view: 4 }).header, child().hash, all)!.why, /header view 4 is not view 3/);
});

test('cheap fields before the hash: a header wrong in view and hash is refused for its view', () => {
  const b = child({ view: 9 });
  assert.equal(fieldOf({ ...b, hash: parent.hash }), 'view');
});

test('only what is given is checked', () => {
  assert.equal(fieldOf(child({ view: 9, proposer: 0, epoch: 5 }), { chainId: 'c', hashBlock }), null);
  assert.equal(fieldOf(child({ timestampMs: 0 }), { parent }), null, 'the time after the parent only with timeAfterParent');
  assert.equal(fieldOf({ ...child(), hash: parent.hash }, { chainId: 'c' }), null, 'no hashBlock: the caller checked the hash');
});
