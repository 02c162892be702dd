// The reconfiguration transaction (reconfig-tx.ts): a change with its approvals round-trips; every
// malformed encoding is refused naming the field (never a crash, never a partial change); random
// bytes behind the tag never decode to anything but a refusal or a canonical change.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { CanonicalWriter, reconfigSigningBytes } from '#libs/crypto/index.ts';
import { RECONFIG_TX_TAG, decodeReconfigTx, encodeReconfigTx, isReconfigTx } from './reconfig-tx.ts';
import type { Reconfiguration } from './reconfig.ts';

const change: Reconfiguration = {
  chainId: 'tx-test',
  epoch: 3,
  ops: [
    { kind: 'add', name: 'm4', peerId: 'peer-4', publicKey: new Uint8Array(32).fill(4) },
    { kind: 'remove', name: 'm1' },
    { kind: 'rotate', name: 'm2', peerId: 'peer-2b', publicKey: new Uint8Array(32).fill(9) },
    { kind: 'params', baseTimeoutMs: 2500, idleHeartbeatMs: 5000 },
  ],
};
const approvals = [0, 2, 3].map((validator) => ({ validator, signature: new Uint8Array(7).fill(validator + 1) }));
const malformed = (pattern: RegExp) => (err: unknown) => isFedError(err, 'RECONFIG_MALFORMED') && pattern.test(err.message);

test('a change with its approvals round-trips; the tag marks it', () => {
  const tx = encodeReconfigTx({ change, approvals });
  assert.equal(isReconfigTx(tx), true);
  assert.deepEqual(decodeReconfigTx(tx), { change, approvals });
  assert.equal(isReconfigTx(new TextEncoder().encode('an ordinary transaction')), false);
  assert.equal(isReconfigTx(tx.subarray(0, 10)), false);
});

test('malformed transactions are refused naming the field', () => {
  const tx = encodeReconfigTx({ change, approvals });
  assert.throws(() => decodeReconfigTx(new TextEncoder().encode('x')), malformed(/^tag: /));
  assert.throws(() => decodeReconfigTx(tx.subarray(0, tx.length - 1)), malformed(/^approvals\[2\]: length .* past the end/));
  assert.throws(() => decodeReconfigTx(new Uint8Array([...tx, 0])), malformed(/^tx: trailing bytes/));
  const withChange = (bytes: Uint8Array, approvalCount = 0) =>
    new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').bytes(bytes).u32(approvalCount, 'n').finish();
  const good = reconfigSigningBytes(change);
  assert.throws(() => decodeReconfigTx(withChange(good.subarray(0, good.length - 3))), malformed(/^change\.ops\[3\]/));
  const otherTag = new CanonicalWriter().str('btcfed/v1/vote', 'tag').str('tx-test', 'c').finish();
  assert.throws(() => decodeReconfigTx(withChange(otherTag)), malformed(/^change\.tag: "btcfed\/v1\/vote"/));
  const badCode = new CanonicalWriter().str('btcfed/v1/reconfig', 't').str('c', 'c').u64(0, 'e').u32(1, 'n')
    .bytes(new CanonicalWriter().u8(9, 'k').str('m1', 'n').finish()).finish();
  assert.throws(() => decodeReconfigTx(withChange(badCode)), malformed(/^change\.ops\[0\]\.kind: unknown operation code 9/));
  const tooMany = new CanonicalWriter().str('btcfed/v1/reconfig', 't').str('c', 'c').u64(0, 'e').u32(17, 'n').finish();
  assert.throws(() => decodeReconfigTx(withChange(tooMany)), malformed(/^change\.ops\.length: 17, at most 16/));
  assert.throws(() => decodeReconfigTx(withChange(good, 5000)), malformed(/^approvals\.length: 5000/));
  const emptyKey = new CanonicalWriter().str('btcfed/v1/reconfig', 't').str('c', 'c').u64(0, 'e').u32(1, 'n')
    .bytes(new CanonicalWriter().u8(1, 'k').str('m9', 'n').str('p', 'p').bytes(new Uint8Array(0)).finish()).finish();
  assert.throws(() => decodeReconfigTx(withChange(emptyKey)), malformed(/^change: .*publicKey/));
});

test('random bytes behind the tag: a refusal naming a field, or a change that re-encodes to the same bytes', () => {
  const prefix = new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').finish();
  const valid = encodeReconfigTx({ change, approvals });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(valid.length), fc.nat(255), (noise, at, byte) => {
      for (const tx of [new Uint8Array([...prefix, ...noise]), valid.map((b, i) => (i === at ? byte : b))]) {
        try {
          const d = decodeReconfigTx(tx);
          assert.deepEqual(encodeReconfigTx(d), tx, 'a decoded transaction is its own canonical encoding');
        } catch (err) {
          assert.ok(isFedError(err, 'RECONFIG_MALFORMED'), String(err));
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('addresses of an add or rotate: signed, round-trip, one encoding, bounded', () => {
  const at = ['/ip4/10.0.0.9/tcp/4001', '/dns4/m4.example.org/tcp/4001'];
  const addressed: Reconfiguration = { ...change, ops: [{ ...change.ops[0]!, addresses: at } as Reconfiguration['ops'][number], ...change.ops.slice(1)] };
  const tx = encodeReconfigTx({ change: addressed, approvals });
  assert.deepEqual(decodeReconfigTx(tx).change, addressed);
  // The addresses are signed: another address, or the same ones in another order, is another change.
  const bytes = (c: Reconfiguration) => Buffer.from(reconfigSigningBytes(c)).toString('hex');
  const reordered: Reconfiguration = { ...addressed, ops: [{ ...addressed.ops[0]!, addresses: [...at].reverse() } as Reconfiguration['ops'][number], ...addressed.ops.slice(1)] };
  assert.notEqual(bytes(addressed), bytes(reordered));
  assert.notEqual(bytes(addressed), bytes(change));
  // An op without addresses encodes as before addresses existed (changes proposed then still verify).
  const plain = { ...change, ops: [{ ...change.ops[0]!, addresses: [] } as Reconfiguration['ops'][number], ...change.ops.slice(1)] };
  assert.equal(bytes(plain), bytes(change));
  // An empty list written out (count 0) is a second encoding of the same change: refused.
  const op = (tail: (w: CanonicalWriter) => CanonicalWriter) => new CanonicalWriter().str('btcfed/v1/reconfig', 't').str('c', 'c').u64(0, 'e').u32(1, 'n')
    .bytes(tail(new CanonicalWriter().u8(1, 'k').str('m9', 'n').str('p', 'p').bytes(new Uint8Array(4))).finish()).finish();
  const withChange = (b: Uint8Array) => new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').bytes(b).u32(0, 'n').finish();
  assert.throws(() => decodeReconfigTx(withChange(op((w) => w.u32(0, 'a')))), malformed(/^change: not the canonical encoding/));
  assert.throws(() => decodeReconfigTx(withChange(op((w) => w.u32(9, 'a')))), malformed(/^change\.ops\[0\]\.addresses\.length: 9, at most 8/));
  assert.throws(() => decodeReconfigTx(withChange(op((w) => w.u32(1, 'a').str('x'.repeat(300), 'a')))), malformed(/^change\.ops\[0\]\.addresses\[0\]: 300 bytes, at most 256/));
  assert.deepEqual(decodeReconfigTx(withChange(op((w) => w.u32(1, 'a').str('/ip4/1.2.3.4/tcp/1', 'a')))).change.ops[0], {
    kind: 'add', name: 'm9', peerId: 'p', publicKey: new Uint8Array(4), addresses: ['/ip4/1.2.3.4/tcp/1'] });
});

test('a params operation is exactly its two values: a short one or one with bytes after them is refused, naming it', () => {
  const opBytes = (extra: (w: CanonicalWriter) => CanonicalWriter) => extra(new CanonicalWriter().u8(4, 'kind')).finish();
  const withOp = (op: Uint8Array) => {
    const c = new CanonicalWriter().str('btcfed/v1/reconfig', 'tag').str('tx-test', 'chainId').u64(3, 'epoch').u32(1, 'count').bytes(op).finish();
    return new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').bytes(c).u32(0, 'approvals').finish();
  };
  assert.deepEqual(decodeReconfigTx(withOp(opBytes((w) => w.u64(1000, 'b').u64(0, 'i')))).change.ops, [{ kind: 'params', baseTimeoutMs: 1000, idleHeartbeatMs: 0 }]);
  assert.throws(() => decodeReconfigTx(withOp(opBytes((w) => w.u64(1000, 'b')))), malformed(/^change\.ops\[0\]\.idleHeartbeatMs: truncated/));
  assert.throws(() => decodeReconfigTx(withOp(opBytes((w) => w.u64(1000, 'b').u64(0, 'i').u8(1, 'x')))), malformed(/^change\.ops\[0\]: trailing bytes/));
  assert.throws(() => decodeReconfigTx(withOp(opBytes((w) => w.u32(1000, 'b').u64(0, 'i')))), malformed(/^change\.ops\[0\]\.baseTimeoutMs: 4 bytes, expected 8/));
});
