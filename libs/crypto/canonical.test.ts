// Canonical signing bytes: known answers written out by hand from the layout in canonical.ts
// (never produced by the code under test), sensitivity to every field, separation between
// kinds, and refusal of bad input with the right code.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import {
  CanonicalWriter,
  PHASES,
  blockHash,
  blockHeaderBytes,
  newViewSigningBytes,
  nextStateHash,
  proposalSigningBytes,
  voteSigningBytes,
} from './canonical.ts';
import type { BlockHeaderFields, Phase, VoteFields } from './canonical.ts';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fill = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);
const rep = (byteHex: string, n: number): string => byteHex.repeat(n);
/** The SHA-256 of hand-written hex, with node:crypto directly rather than the library's sha256. */
const sha256Hex = (h: string): string => createHash('sha256').update(Buffer.from(h, 'hex')).digest('hex');
const code = (c: string) => (err: unknown) => isFedError(err, c);

// Hand-encoded pieces: u32be length, then the bytes (ASCII written out as hex).
const TAG_VOTE = '0000000e' + '6274636665642f76312f766f7465'; // "btcfed/v1/vote", 14 bytes
const TAG_PROPOSAL = '00000012' + '6274636665642f76312f70726f706f73616c'; // "btcfed/v1/proposal", 18
const TAG_NEW_VIEW = '00000012' + '6274636665642f76312f6e65772d76696577'; // "btcfed/v1/new-view", 18
const TAG_BLOCK = '0000000f' + '6274636665642f76312f626c6f636b'; // "btcfed/v1/block", 15
const TAG_STATE = '0000000f' + '6274636665642f76312f7374617465'; // "btcfed/v1/state", 15
const CHAIN_TEST = '0000000b' + '6274636665642d74657374'; // "btcfed-test", 11
const CHAIN_C = '00000001' + '63'; // "c"
const HASH = (byteHex: string): string => '00000020' + rep(byteHex, 32);
const EPOCH_0 = '00000008' + '0000000000000000'; // u64(epoch 0)
const EPOCH_5 = '00000008' + '0000000000000005'; // u64(epoch 5)
const QC_1_7_11 = '00000035' + '00000001' + '01' + '00000008' + '0000000000000007' + HASH('11');

const baseVote: VoteFields = { chainId: 'btcfed-test', epoch: 0, phase: PHASES.PRE_COMMIT, view: 258, blockHash: fill(0xab) };

const baseHeader: BlockHeaderFields = {
  chainId: 'c',
  epoch: 0,
  height: 1,
  view: 2,
  parentHash: fill(0x00),
  proposer: 3,
  timestampMs: 1_700_000_000_000,
  txRoot: fill(0x33),
  stateHash: fill(0x44),
};
const BASE_HEADER_HEX =
  TAG_BLOCK + CHAIN_C +
  EPOCH_0 +
  '00000008' + '0000000000000001' + // height 1
  '00000008' + '0000000000000002' + // view 2
  HASH('00') + // parentHash
  '00000004' + '00000003' + // proposer 3 (u32)
  '00000008' + '0000018bcfe56800' + // timestampMs 1 700 000 000 000
  HASH('33') + HASH('44');

describe('known answers (hand-encoded)', () => {
  it('vote', () => {
    const expected = TAG_VOTE + CHAIN_TEST + EPOCH_0 + '00000001' + '02' + '00000008' + '0000000000000102' + HASH('ab');
    assert.equal(hex(voteSigningBytes(baseVote)), expected);
  });

  it('vote with a non-ASCII chain id and a view above 2^32', () => {
    const bytes = voteSigningBytes({ chainId: 'é', epoch: 0, phase: PHASES.COMMIT, view: 2 ** 40 + 5, blockHash: fill(0x01) });
    const expected = TAG_VOTE + '00000002' + 'c3a9' + EPOCH_0 + '00000001' + '03' + '00000008' + '0000010000000005' + HASH('01');
    assert.equal(hex(bytes), expected);
  });

  it('proposal with its justify QC', () => {
    const bytes = proposalSigningBytes({
      chainId: 'c',
      epoch: 5,
      view: 8,
      blockHash: fill(0x22),
      justify: { phase: PHASES.PREPARE, view: 7, blockHash: fill(0x11) },
    });
    const expected = TAG_PROPOSAL + CHAIN_C + EPOCH_5 + '00000008' + '0000000000000008' + HASH('22') + QC_1_7_11;
    assert.equal(hex(bytes), expected);
  });

  it('new-view without a high QC (genesis) encodes an empty field', () => {
    const bytes = newViewSigningBytes({ chainId: 'c', epoch: 0, view: 2 ** 40 + 5, highQC: null });
    assert.equal(hex(bytes), TAG_NEW_VIEW + CHAIN_C + EPOCH_0 + '00000008' + '0000010000000005' + '00000000');
  });

  it('new-view with a high QC', () => {
    const bytes = newViewSigningBytes({ chainId: 'c', epoch: 5, view: 9, highQC: { phase: 1, view: 7, blockHash: fill(0x11) } });
    assert.equal(hex(bytes), TAG_NEW_VIEW + CHAIN_C + EPOCH_5 + '00000008' + '0000000000000009' + QC_1_7_11);
  });

  it('block header bytes and block hash', () => {
    assert.equal(hex(blockHeaderBytes(baseHeader)), BASE_HEADER_HEX);
    assert.equal(hex(blockHash(baseHeader)), sha256Hex(BASE_HEADER_HEX));
  });

  it('next state hash', () => {
    const expected = sha256Hex(TAG_STATE + HASH('44') + HASH('33'));
    assert.equal(hex(nextStateHash(fill(0x44), fill(0x33))), expected);
  });
});

describe('every field counts', () => {
  it('changing any vote field changes the bytes', () => {
    const base = hex(voteSigningBytes(baseVote));
    const variants: VoteFields[] = [
      { ...baseVote, chainId: 'btcfed-tesu' },
      { ...baseVote, phase: PHASES.COMMIT },
      { ...baseVote, view: 259 },
      { ...baseVote, blockHash: Uint8Array.from(fill(0xab), (b, i) => (i === 31 ? b ^ 1 : b)) },
    ];
    for (const v of variants) assert.notEqual(hex(voteSigningBytes(v)), base, JSON.stringify({ ...v, blockHash: undefined }));
  });

  it('changing any header field changes the block hash', () => {
    const base = hex(blockHash(baseHeader));
    const changes: Array<Partial<BlockHeaderFields>> = [
      { chainId: 'd' },
      { epoch: 1 },
      { height: 2 },
      { view: 3 },
      { parentHash: fill(0x01) },
      { proposer: 4 },
      { timestampMs: 1_700_000_000_001 },
      { txRoot: fill(0x34) },
      { stateHash: fill(0x45) },
    ];
    for (const change of changes) {
      assert.notEqual(hex(blockHash({ ...baseHeader, ...change })), base, Object.keys(change).join());
    }
  });

  it('changing any proposal / new-view field changes the bytes, and null differs from a genesis-like QC', () => {
    const qc = { phase: PHASES.PREPARE, view: 0, blockHash: fill(0x00) };
    const base = { chainId: 'c', epoch: 0, view: 8, blockHash: fill(0x22), justify: qc };
    const b = hex(proposalSigningBytes(base));
    assert.notEqual(hex(proposalSigningBytes({ ...base, view: 9 })), b);
    assert.notEqual(hex(proposalSigningBytes({ ...base, epoch: 1 })), b);
    assert.notEqual(hex(proposalSigningBytes({ ...base, blockHash: fill(0x23) })), b);
    assert.notEqual(hex(proposalSigningBytes({ ...base, justify: { ...qc, phase: PHASES.COMMIT } })), b);
    assert.notEqual(hex(proposalSigningBytes({ ...base, justify: { ...qc, view: 1 } })), b);
    assert.notEqual(hex(proposalSigningBytes({ ...base, justify: null })), b);
    const nv = { chainId: 'c', epoch: 0, view: 8, highQC: null };
    assert.notEqual(hex(newViewSigningBytes(nv)), hex(newViewSigningBytes({ ...nv, highQC: qc })));
    assert.notEqual(hex(newViewSigningBytes(nv)), hex(newViewSigningBytes({ ...nv, epoch: 1 })));
  });

  it('distinct vote inputs never give equal bytes (property)', () => {
    const vote = fc.record({
      chainId: fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s.isWellFormed()),
      epoch: fc.nat(3),
      phase: fc.constantFrom<Phase>(1, 2, 3),
      view: fc.maxSafeNat(),
      blockHash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    });
    fc.assert(
      fc.property(vote, vote, (a, b) => {
        const same = a.chainId === b.chainId && a.epoch === b.epoch && a.phase === b.phase && a.view === b.view && hex(a.blockHash) === hex(b.blockHash);
        return (hex(voteSigningBytes(a)) === hex(voteSigningBytes(b))) === same;
      }),
      { numRuns: 300 },
    );
  });
});

describe('domain separation', () => {
  it('a vote, a proposal, a new-view and a block over the same numbers all differ', () => {
    const h = fill(0x11);
    const encodings = [
      voteSigningBytes({ chainId: 'c', epoch: 0, phase: 1, view: 7, blockHash: h }),
      proposalSigningBytes({ chainId: 'c', epoch: 0, view: 7, blockHash: h, justify: null }),
      newViewSigningBytes({ chainId: 'c', epoch: 0, view: 7, highQC: { phase: 1, view: 7, blockHash: h } }),
      newViewSigningBytes({ chainId: 'c', epoch: 0, view: 7, highQC: null }),
      blockHeaderBytes({ ...baseHeader, view: 7, parentHash: h, txRoot: h, stateHash: h }),
    ].map(hex);
    assert.equal(new Set(encodings).size, encodings.length);
  });
});

describe('bad input', () => {
  const cases: Array<[string, string, () => unknown]> = [
    ['phase 0', 'CRYPTO_BAD_PHASE', () => voteSigningBytes({ ...baseVote, phase: 0 as Phase })],
    ['phase 4', 'CRYPTO_BAD_PHASE', () => voteSigningBytes({ ...baseVote, phase: 4 as Phase })],
    ['phase as string', 'CRYPTO_BAD_PHASE', () => voteSigningBytes({ ...baseVote, phase: '1' as unknown as Phase })],
    ['QC phase', 'CRYPTO_BAD_PHASE', () => newViewSigningBytes({ chainId: 'c', epoch: 0, view: 1, highQC: { phase: 0 as Phase, view: 0, blockHash: fill(1) } })],
    ['negative view', 'CRYPTO_BAD_INTEGER', () => voteSigningBytes({ ...baseVote, view: -1 })],
    ['fractional view', 'CRYPTO_BAD_INTEGER', () => voteSigningBytes({ ...baseVote, view: 1.5 })],
    ['view 2^53', 'CRYPTO_BAD_INTEGER', () => voteSigningBytes({ ...baseVote, view: 2 ** 53 })],
    ['NaN view', 'CRYPTO_BAD_INTEGER', () => voteSigningBytes({ ...baseVote, view: Number.NaN })],
    ['bigint view', 'CRYPTO_BAD_INTEGER', () => voteSigningBytes({ ...baseVote, view: 1n as unknown as number })],
    ['proposer 2^32', 'CRYPTO_BAD_INTEGER', () => blockHash({ ...baseHeader, proposer: 2 ** 32 })],
    ['negative timestamp', 'CRYPTO_BAD_INTEGER', () => blockHash({ ...baseHeader, timestampMs: -5 })],
    ['31-byte block hash', 'CRYPTO_BAD_HASH', () => voteSigningBytes({ ...baseVote, blockHash: new Uint8Array(31) })],
    ['33-byte parent hash', 'CRYPTO_BAD_HASH', () => blockHash({ ...baseHeader, parentHash: new Uint8Array(33) })],
    ['short state hash', 'CRYPTO_BAD_HASH', () => nextStateHash(new Uint8Array(0), fill(1))],
    ['empty chain id', 'CRYPTO_BAD_STRING', () => voteSigningBytes({ ...baseVote, chainId: '' })],
    ['lone surrogate', 'CRYPTO_BAD_STRING', () => voteSigningBytes({ ...baseVote, chainId: 'a\uD800' })],
    ['129-byte chain id', 'CRYPTO_BAD_STRING', () => voteSigningBytes({ ...baseVote, chainId: 'x'.repeat(129) })],
    ['undefined justify', 'CRYPTO_BAD_QC', () => proposalSigningBytes({ chainId: 'c', epoch: 0, view: 1, blockHash: fill(1), justify: undefined as unknown as null })],
  ];
  for (const [what, expectedCode, run] of cases) {
    it(`${what} → ${expectedCode}`, () => assert.throws(run, code(expectedCode)));
  }

  it('accepts the edges: view 2^53 - 1, proposer 2^32 - 1, a 128-byte chain id', () => {
    assert.equal(voteSigningBytes({ ...baseVote, view: Number.MAX_SAFE_INTEGER }).length, 18 + 15 + 12 + 5 + 12 + 36); // tag, chain id, epoch, phase, view, hash
    assert.ok(blockHash({ ...baseHeader, proposer: 2 ** 32 - 1, chainId: 'x'.repeat(128) }).length === 32);
  });
});

describe('the writer: one buffer, strings remembered', () => {
  it('a field past the first buffer, and many, encode as field(b) each', () => {
    const big = new Uint8Array(70_000).map((_, i) => i & 0xff);
    const w = new CanonicalWriter().bytes(new Uint8Array([7])).bytes(big);
    for (let i = 0; i < 300; i++) w.u8(i & 0xff, 'n');
    const expected = '00000001' + '07' + (70_000).toString(16).padStart(8, '0') + hex(big) + Array.from({ length: 300 }, (_, i) => '00000001' + (i & 0xff).toString(16).padStart(2, '0')).join('');
    assert.equal(hex(w.finish()), expected);
    assert.equal(hex(w.digest()), sha256Hex(expected), 'digest() is the SHA-256 of finish()');
    assert.equal(hex(w.finish()), expected, 'finish() can be called again');
  });

  it('the same string encodes the same after the remembered ones were dropped, and a long one too', () => {
    const first = hex(voteSigningBytes(baseVote));
    // More chain ids than are remembered: the cache is cleared on the way.
    for (let i = 0; i < 200; i++) voteSigningBytes({ ...baseVote, chainId: `chain-${i}` });
    assert.equal(hex(voteSigningBytes(baseVote)), first);
    assert.equal(hex(voteSigningBytes(baseVote)), TAG_VOTE + CHAIN_TEST + EPOCH_0 + '00000001' + '02' + '00000008' + '0000000000000102' + HASH('ab'));
    const long = 'é'.repeat(300); // 600 bytes: not remembered
    const w = new CanonicalWriter().str(long, 'long').str(long, 'long');
    const field = (600).toString(16).padStart(8, '0') + 'c3a9'.repeat(300);
    assert.equal(hex(w.finish()), field + field);
  });
});
