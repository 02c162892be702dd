// Arbitraries for the consensus wire's values, shared by the wire and signer targets: valid ones
// (what an honest member sends: they must round-trip) and extreme ones (what a hostile peer may
// send: lengths, counts and numbers at and past every bound).

import fc from 'fast-check';
import { blockHash, paramSpec } from '#libs/crypto/index.ts';
import { Phase, type Block, type BlockHeader, type QuorumCert } from '#libs/hotstuff/index.ts';
import type { FrameLimits } from '#libs/wire/index.ts';

export const CHAIN = 'fuzz-chain';
export const N = 4;
/** Real libp2p peer ids (reconfiguration and Attach targets): addresses' /p2p parts are checked against them. */
export const PEERS = [
  '12D3KooWCmxv6aCES4u9tkeq3EtCoiXw2Ud9itJ9g42fH6YJ7Vjv', '12D3KooWGzh7TnsBvG6mjTqCdLGMwHXnpk9PkBqhmgjWFQMGH7wY',
  '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK', '12D3KooWNfZ7GNBwBMjjFuBV9CP8NkXb5ZK2DqTzbHGdEMcWZJQr',
  '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq', '12D3KooWKrNjfowB4J3F4k8LBAzkvTqBUnMgb7nrDZ5RUYmVyePd',
];

export const SIG_BYTES = paramSpec('slh-dsa-sha2-128f').signatureBytes;

/** What the consensus service decodes frames with (services/consensus/main.ts), for a 4-member 128f chain. */
export const LIMITS: FrameLimits = {
  chainId: CHAIN, validatorCount: N, signatureBytes: SIG_BYTES, maxBlockTxs: 10_000, maxBlockBytes: 4 << 20,
  maxFrameBytes: 64 << 20, maxSyncBlocks: 64, hashBlock: blockHash,
};

/** Deterministic filler: fast where fc.uint8Array of 17 kB would not be. */
export const filled = (length: number, seed: number): Uint8Array => {
  const b = new Uint8Array(length);
  let x = (seed | 0) || 1;
  for (let i = 0; i < length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
};

export const hash = fc.integer().map((s) => filled(32, s));
export const signature = fc.integer().map((s) => filled(SIG_BYTES, s));
export const view = fc.oneof(fc.nat({ max: 1000 }), fc.constantFrom(0, 1, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER));
export const phase = fc.constantFrom(Phase.PREPARE, Phase.PRE_COMMIT, Phase.COMMIT);
export const sender = fc.nat({ max: N - 1 });

export const header: fc.Arbitrary<BlockHeader> = fc.record({
  chainId: fc.constantFrom(CHAIN, 'x', 'c'.repeat(64)), epoch: view, height: view, view, parentHash: hash,
  proposer: sender, timestampMs: view, txRoot: hash, stateHash: hash,
});

export const txs = fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 });

export const block: fc.Arbitrary<Block> = fc.record({ header, txs }).map(({ header, txs }) => ({ header, hash: blockHash(header), txs }));

export const qc: fc.Arbitrary<QuorumCert> = fc.record({
  phase, view, blockHash: hash, signers: fc.subarray([0, 1, 2, 3]), seed: fc.integer(),
}).map(({ seed, ...q }) => ({ ...q, signatures: q.signers.map((i) => filled(SIG_BYTES, seed + i)) }));

// ------------------------------------------------------------------ extremes, at the protobuf level

/** uint64 values at and past every bound the decoder must hold (above 2^53 cannot become a number). */
export const wildU64 = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 1000 }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 1, 1e300) },
);
export const wildU32 = fc.oneof({ weight: 3, arbitrary: fc.nat({ max: 8 }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 31, 2 ** 32 - 1, 255, 256, 65535) });
/** Byte strings of right and wrong lengths: one short, one long, empty, huge. */
export const wildBytes = (right: number): fc.Arbitrary<Uint8Array> => fc.oneof(
  { weight: 3, arbitrary: fc.integer().map((s) => filled(right, s)) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, right - 1, right + 1, 2 * right, 70_000).chain((n) => fc.integer().map((s) => filled(Math.max(0, n), s))) },
);
export const wildChain = fc.oneof({ weight: 4, arbitrary: fc.constant(CHAIN) }, { weight: 1, arbitrary: fc.constantFrom('', 'other-chain', 'x'.repeat(65), 'x'.repeat(100_000), '\u0000', '\u{1F600}') });
export const wildPhase = fc.oneof({ weight: 4, arbitrary: phase as fc.Arbitrary<number> }, { weight: 1, arbitrary: fc.constantFrom(0, 4, 2 ** 31 - 1, -1) });
/** Arrays: usually a few, sometimes none, sometimes past every cap. */
export const wildArray = <T>(a: fc.Arbitrary<T>, cap: number): fc.Arbitrary<T[]> => fc.oneof(
  { weight: 4, arbitrary: fc.array(a, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(cap, cap + 1, 3 * cap).chain((n) => fc.array(a, { minLength: n, maxLength: n })) },
);

export const wildHeader = fc.record({
  chainId: wildChain, height: wildU64, view: wildU64, parentHash: wildBytes(32), proposer: wildU32, timestampMs: wildU64,
  txRoot: wildBytes(32), stateHash: wildBytes(32), epoch: wildU64,
});
export const wildQc = fc.record({
  phase: wildPhase, view: wildU64, blockHash: wildBytes(32),
  signers: fc.oneof(fc.constantFrom(new Uint8Array([0b1111]), new Uint8Array([0b0111]), new Uint8Array(), new Uint8Array([0xff]), new Uint8Array(40).fill(0xff)), fc.uint8Array({ maxLength: 3 })),
  signatures: wildArray(wildBytes(SIG_BYTES), 4),
});
export const wildBlock = fc.record({ header: fc.option(wildHeader, { nil: undefined }), txs: wildArray(fc.uint8Array({ maxLength: 32 }), 8) });
