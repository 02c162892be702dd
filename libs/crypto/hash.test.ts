// Hashing: SHA-256 against published vectors, the Merkle root against expectations built by hand
// from the layout in hash.ts (with node:crypto directly, not the code under test), and hex.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { isFedError } from '#libs/errors/index.ts';
import { ZERO_HASH, bytesEqual, fromHex, merkleLeafBytes, merkleLevels, merkleProof, merkleRoot, merkleRootOfLeafBytes, verifyMerkleProof, sha256, toHex, txHash } from './hash.ts';

const h = (...hexParts: string[]): string =>
  createHash('sha256').update(Buffer.from(hexParts.join(''), 'hex')).digest('hex');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const code = (c: string) => (err: unknown) => isFedError(err, c);

describe('sha256', () => {
  it('matches the FIPS 180 vectors, and parts hash as their concatenation', () => {
    assert.equal(hex(sha256()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const abc = new TextEncoder().encode('abc');
    assert.equal(hex(sha256(abc)), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.equal(hex(sha256(abc.subarray(0, 1), abc.subarray(1))), hex(sha256(abc)));
    assert.ok(!Buffer.isBuffer(sha256(abc)));
  });

  it('txHash is SHA-256 of the transaction bytes', () => {
    assert.equal(hex(txHash(new TextEncoder().encode('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    assert.throws(() => txHash('abc' as unknown as Uint8Array), code('CRYPTO_BAD_TX'));
  });
});

describe('merkleRoot', () => {
  const a = '11'.repeat(32);
  const b = '22'.repeat(32);
  const c = '33'.repeat(32);
  const bytes = (x: string): Uint8Array => Uint8Array.from(Buffer.from(x, 'hex'));

  it('empty list: SHA-256 of the tag "btcfed/v1/merkle-empty"', () => {
    // "btcfed/v1/merkle-empty" written out as ASCII hex.
    assert.equal(hex(merkleRoot([])), h('6274636665642f76312f6d65726b6c652d656d707479'));
  });

  it('one leaf: H(00 ‖ a)', () => {
    assert.equal(hex(merkleRoot([bytes(a)])), h('00', a));
  });

  it('two leaves: H(01 ‖ H(00 ‖ a) ‖ H(00 ‖ b))', () => {
    assert.equal(hex(merkleRoot([bytes(a), bytes(b)])), h('01', h('00', a), h('00', b)));
  });

  it('three leaves: the odd third is promoted, not duplicated', () => {
    const expected = h('01', h('01', h('00', a), h('00', b)), h('00', c));
    assert.equal(hex(merkleRoot([bytes(a), bytes(b), bytes(c)])), expected);
    assert.notEqual(hex(merkleRoot([bytes(a), bytes(b), bytes(c), bytes(c)])), expected);
  });

  it('five leaves: promotion repeats up the levels', () => {
    const d = '44'.repeat(32);
    const e = '55'.repeat(32);
    const ab = h('01', h('00', a), h('00', b));
    const cd = h('01', h('00', c), h('00', d));
    const expected = h('01', h('01', ab, cd), h('00', e));
    assert.equal(hex(merkleRoot([a, b, c, d, e].map(bytes))), expected);
  });

  it('order matters, and a leaf is never an inner node', () => {
    assert.notEqual(hex(merkleRoot([bytes(a), bytes(b)])), hex(merkleRoot([bytes(b), bytes(a)])));
    // A single leaf equal to an inner node's hash must not reproduce the two-leaf root.
    const inner = bytes(h('01', h('00', a), h('00', b)));
    assert.notEqual(hex(merkleRoot([inner])), hex(merkleRoot([bytes(a), bytes(b)])));
  });

  it('refuses a hash that is not 32 bytes', () => {
    assert.throws(() => merkleRoot([bytes(a), new Uint8Array(31)]), code('CRYPTO_BAD_HASH'));
  });
});

describe('hex', () => {
  it('round-trips and accepts either case', () => {
    const raw = Uint8Array.from([0x00, 0x0f, 0xa5, 0xff]);
    assert.equal(toHex(raw), '000fa5ff');
    assert.deepEqual(fromHex('000fa5ff'), raw);
    assert.deepEqual(fromHex('000FA5FF'), raw);
    assert.deepEqual(fromHex(''), new Uint8Array(0));
    assert.equal(toHex(ZERO_HASH), '00'.repeat(32));
  });

  it('refuses odd length and non-hex digits with CRYPTO_BAD_HEX', () => {
    for (const bad of ['0', 'abc', '0g', 'zz', '0x00', ' 00', '00 ', 'é0']) {
      assert.throws(() => fromHex(bad), code('CRYPTO_BAD_HEX'), JSON.stringify(bad));
    }
  });

  it('bytesEqual compares contents', () => {
    assert.equal(bytesEqual(Uint8Array.from([1, 2]), Uint8Array.from([1, 2])), true);
    assert.equal(bytesEqual(Uint8Array.from([1, 2]), Uint8Array.from([1, 3])), false);
    assert.equal(bytesEqual(Uint8Array.from([1]), Uint8Array.from([1, 0])), false);
  });
});

it('merkle inclusion proofs: every index of every size from 1 to 33 proves against merkleRoot; any change refutes it', () => {
  for (let count = 1; count <= 33; count++) {
    const hashes = Array.from({ length: count }, (_, i) => txHash(new TextEncoder().encode(`tx-${count}-${i}`)));
    const root = merkleRoot(hashes);
    for (let index = 0; index < count; index++) {
      const proof = merkleProof(hashes, index);
      assert.deepEqual(merkleProof(merkleLevels(hashes), index), proof, 'from the levels, the same proof');
      assert.ok(proof.length <= Math.ceil(Math.log2(count)), `size ${count}: at most one sibling per level`);
      assert.ok(verifyMerkleProof(hashes[index]!, index, count, proof, root), `size ${count} index ${index}`);
      if (count > 1) {
        assert.equal(verifyMerkleProof(hashes[(index + 1) % count]!, index, count, proof, root), false, 'another transaction');
        assert.equal(verifyMerkleProof(hashes[index]!, (index + 1) % count, count, proof, root), false, 'another index');
        const bent = proof.map((s) => s.slice());
        bent[0]![0]! ^= 1;
        assert.equal(verifyMerkleProof(hashes[index]!, index, count, bent, root), false, 'a changed sibling');
        assert.equal(verifyMerkleProof(hashes[index]!, index, count, proof.slice(1), root), false, 'a sibling left out');
      }
      assert.equal(verifyMerkleProof(hashes[index]!, index, count, [...proof, root], root), false, 'a sibling too many');
      assert.equal(verifyMerkleProof(hashes[index]!, index, index, proof, root), false, 'an index past the count');
    }
  }
  assert.throws(() => merkleProof([txHash(new Uint8Array([1]))], 1), /no transaction at index 1 of 1/);
  assert.throws(() => merkleProof([], 0), /no transaction at index 0 of 0/);
  assert.deepEqual(merkleLevels([txHash(new Uint8Array([1]))]).at(-1)![0], merkleRoot([txHash(new Uint8Array([1]))]));
});

describe('Merkle leaves kept as bytes', () => {
  const ids = Array.from({ length: 37 }, (_, i) => txHash(new Uint8Array([i, i >> 8, 7])));
  it('the root of concatenated runs of leaves is the root over all their ids, for every length and split', () => {
    for (let n = 0; n <= ids.length; n++) {
      const all = ids.slice(0, n);
      // merkleLevels builds the tree node by node, apart from the roots' one buffer: the same top.
      if (n > 0) assert.equal(toHex(merkleLevels(all).at(-1)![0]!), toHex(merkleRoot(all)), `${n} ids, against the levels`);
      assert.equal(toHex(merkleRootOfLeafBytes(merkleLeafBytes(all))), toHex(merkleRoot(all)), `${n} ids`);
      for (const cut of [1, 2, 3, Math.floor(n / 2), n - 1]) {
        if (cut <= 0 || cut >= n) continue;
        const joined = Uint8Array.from([...merkleLeafBytes(all.slice(0, cut)), ...merkleLeafBytes(all.slice(cut))]);
        assert.equal(toHex(merkleRootOfLeafBytes(joined)), toHex(merkleRoot(all)), `${n} ids cut at ${cut}`);
      }
    }
  });
  it('each leaf is SHA-256(0x00 ‖ id); a buffer that is not whole leaves is refused', () => {
    const leaves = merkleLeafBytes(ids.slice(0, 2));
    assert.equal(toHex(leaves.subarray(32)), toHex(new Uint8Array(createHash('sha256').update(Uint8Array.of(0)).update(ids[1]!).digest())));
    assert.throws(() => merkleRootOfLeafBytes(new Uint8Array(33)), (e) => isFedError(e, 'CRYPTO_BAD_HASH'));
    assert.throws(() => merkleLeafBytes([new Uint8Array(31)]), (e) => isFedError(e, 'CRYPTO_BAD_HASH'));
  });
});
