// Target public-api: a request to a member's public gRPC API (ConsensusService, consensus.proto)
// from any client — the bytes grpc-js hands to the generated deserializer, then the service's own
// validation and handler (services/consensus/api.ts) over a real mempool and a five-block chain
// whose first two heights are pruned. Refusal: a status the service maps from a FedError (INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE,
// RESOURCE_EXHAUSTED, ...), or a request the deserializer cannot read (grpc-js refuses the call).
// Never INTERNAL: that status means the handler threw something it did not mean to. Each call
// answers exactly once. The first input byte picks the method.
// The store and the evidence log are in-memory stand-ins (the handlers only read them); the
// mempool is the real one.

import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { blockHash, sha256, toHex } from '#libs/crypto/index.ts';
import { genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import {
  GetBlockRequest, GetEpochsRequest, GetEvidenceRequest, GetStatusRequest, GetTransactionRequest, GetValidatorsRequest, ListBlocksRequest,
  SubmitTransactionRequest, SubmitTransactionsRequest,
} from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { Block as BlockMsg } from '#libs/gen/btcfed/v1/wire.pb.ts';
import { blockToWire } from '#libs/wire/index.ts';
import { CONSENSUS_SERVICE, consensusService, mempoolIntake, type ApiDeps } from '../../services/consensus/api.ts';
import { Mempool } from '../../services/consensus/mempool.ts';
import { EvidenceLog } from '../../services/consensus/evidence.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { protoBytes } from './wire-frame.ts';
import { CHAIN, filled } from './wire-values.ts';

interface Method { name: string; codec: { decode(b: Uint8Array): unknown; encode(m: never): { finish(): Uint8Array } }; call: (svc: ReturnType<typeof consensusService>) => unknown }

const genesis = genesisBlock(CHAIN, blockHash);
const chain: Block[] = [genesis];
for (let h = 1; h <= 5; h++) {
  const txs = [new TextEncoder().encode(`tx ${h}`), new TextEncoder().encode(`tx ${h}b`)];
  const header = { ...genesis.header, height: h, view: h, parentHash: chain[h - 1]!.hash, txRoot: sha256(Uint8Array.of(h)) };
  chain.push({ header, hash: blockHash(header), txs });
}
const byHash = new Map(chain.map((b) => [toHex(b.hash), b]));
const txAt = new Map(chain.flatMap((b) => b.txs.map((tx, index) => [toHex(sha256(tx)), { height: b.header.height, blockHash: b.hash, index }] as const)));
// Heights 1 and 2 are pruned (consensus.keep_blocks): their bodies are gone, their headers and
// transactions' places kept, as BlockStore keeps them.
const PRUNED_TO = 2;
const store = {
  committedHeight: () => 5, blockAtHeight: (h: number) => (h <= PRUNED_TO ? undefined : chain[h]),
  blockByHash: (h: Uint8Array) => { const b = byHash.get(toHex(h)); return b && b.header.height > PRUNED_TO ? b : undefined; },
  hashAtHeight: (h: number) => chain[h]?.hash, headerAtHeight: (h: number) => chain[h]?.header,
  prunedTo: () => PRUNED_TO, isPruned: (h: number) => h >= 1 && h <= PRUNED_TO,
  // As the block store keeps a committed block: its wire encoding (GetBlock, ListBlocks answer it as is).
  storedAtHeight: (h: number) => (h <= PRUNED_TO || !chain[h] ? undefined : { hash: chain[h].hash, block: BlockMsg.encode(blockToWire(chain[h])).finish(), qc: undefined }),
  qcFor: () => undefined, txLocation: (h: Uint8Array) => txAt.get(toHex(h)), endedEpochCount: () => 0, epochProofMessage: () => undefined,
};

function service(): ReturnType<typeof consensusService> {
  const pool = new Mempool({ maxTxs: 1000, maxBytes: 1 << 20, maxTxBytes: 4096 });
  return consensusService({
    member: 'm0', chainId: CHAIN, self: 0, log: pino({ level: 'silent' }), store, pool: mempoolIntake(pool, () => false, () => {}),
    validators: { members: [], quorum: 3, f: 1, epoch: 0, n: 4 },
    node: { genesis, failure: undefined, isCommitted: () => false, status: () => ({ view: 6 }) },
    evidence: new EvidenceLog(CHAIN, { evidence: () => [] } as never),
    nextCommit: () => new Promise(() => {}),
  } as unknown as ApiDeps);
}

const METHODS: Method[] = [
  { name: 'submitTransaction', codec: SubmitTransactionRequest, call: (s) => s.submitTransaction },
  { name: 'submitTransactions', codec: SubmitTransactionsRequest, call: (s) => s.submitTransactions },
  { name: 'getTransaction', codec: GetTransactionRequest, call: (s) => s.getTransaction },
  { name: 'getStatus', codec: GetStatusRequest, call: (s) => s.getStatus },
  { name: 'getBlock', codec: GetBlockRequest, call: (s) => s.getBlock },
  { name: 'listBlocks', codec: ListBlocksRequest, call: (s) => s.listBlocks },
  { name: 'getValidators', codec: GetValidatorsRequest, call: (s) => s.getValidators },
  { name: 'getEpochs', codec: GetEpochsRequest, call: (s) => s.getEpochs },
  { name: 'getEvidence', codec: GetEvidenceRequest, call: (s) => s.getEvidence },
];

class Refused extends Error {}

let svc: ReturnType<typeof consensusService> | undefined;
let calls = 0;

async function run(input: Uint8Array): Promise<void> {
  // A fresh mempool now and then, so submissions keep reaching the paths of an empty pool.
  if (!svc || ++calls % 500 === 0) svc = service();
  const m = METHODS[(input[0] ?? 0) % METHODS.length]!;
  let request: unknown;
  try { request = m.codec.decode(input.subarray(1)); } catch (err) { throw new Refused(`deserializer: ${String(err)}`); }
  const call = Object.assign(new EventEmitter(), { request, getPath: () => `/btcfed.v1.ConsensusService/${m.name}`, getPeer: () => 'ipv4:203.0.113.9:5555', cancelled: false });
  let answers = 0;
  let answer: unknown;
  const status = await new Promise<grpc.StatusObject | null>((resolve) => {
    (m.call(svc!) as grpc.handleUnaryCall<unknown, unknown>)(call as never, (err, res) => { answers++; answer = res; resolve(err as grpc.StatusObject | null); });
  });
  await new Promise((r) => setImmediate(r));
  if (answers !== 1) violated(`${m.name} answered ${answers} times`);
  if (status === null) {
    // A block answered from the store's bytes (stored-reads.ts), as grpc-js sends it through the
    // served definition, reads back. (Other answers are built from these stand-ins, not encoded here.)
    if (m.name === 'getBlock' || m.name === 'listBlocks') {
      const def = (CONSENSUS_SERVICE as unknown as Record<string, grpc.MethodDefinition<unknown, unknown>>)[m.name]!;
      try { def.responseDeserialize(def.responseSerialize(answer)); } catch (err) { violated(`${m.name}'s answer does not encode and decode: ${String(err)}`); }
    }
    return;
  }
  if (status.code === grpc.status.INTERNAL || status.code === grpc.status.UNKNOWN) violated(`${m.name} answered ${grpc.status[status.code]}: ${status.details}`);
  throw new Refused(`${grpc.status[status.code]}: ${status.details}`);
}

const u64 = fc.oneof(fc.nat({ max: 10 }), fc.constantFrom(2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64 - 1));
const u32 = fc.oneof(fc.nat({ max: 200 }), fc.constantFrom(2 ** 31, 2 ** 32 - 1));
const hashes = fc.oneof(fc.constantFrom(...chain.map((b) => b.hash), ...chain.flatMap((b) => b.txs.map((t) => sha256(t)))), fc.integer().map((s) => filled(32, s)),
  fc.constantFrom(new Uint8Array(), new Uint8Array(31), new Uint8Array(33)));
const tx = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(new Uint8Array(), new Uint8Array(4096), new Uint8Array(4097)));
const as = (i: number) => (r: unknown): [number, unknown] => [i, r];
const requests: fc.Arbitrary<[number, unknown]> = fc.oneof(
  tx.map((t) => as(0)({ tx: t })),
  fc.oneof(fc.array(tx, { maxLength: 20 }), fc.constant(Array.from({ length: 10_001 }, () => Uint8Array.of(1)))).map((txs) => as(1)({ txs })),
  fc.record({ txHash: hashes, withProof: fc.boolean() }).map(as(2)),
  fc.constant(as(3)({})),
  fc.oneof(u64.map((value) => ({ $case: 'height', value })), hashes.map((value) => ({ $case: 'hash', value })), fc.constant(undefined)).map((by) => as(4)({ by })),
  fc.record({ fromHeight: u64, limit: u32, headersOnly: fc.boolean() }).map(as(5)),
  fc.constant(as(6)({})),
  fc.record({ fromEpoch: u64, limit: u32 }).map(as(7)),
  fc.record({ fromView: u64, afterSeq: u64, limit: u32 }).map(as(8)),
);

/** A request as the target reads it: the method's index, then the request's protobuf. */
export function apiInput(method: string, request: unknown): Uint8Array {
  const i = METHODS.findIndex((m) => m.name === method);
  return Uint8Array.from([i, ...(METHODS[i]!.codec.encode as (m: unknown) => { finish(): Uint8Array })(request).finish()]);
}

/** Hashes of the chain the target serves: a block's and a committed transaction's. */
export const SERVED = { block: chain[3]!.hash, tx: sha256(chain[2]!.txs[1]!) };

export const publicApi: FuzzTarget = {
  name: 'public-api',
  describe: 'requests to a member\'s public gRPC API (ConsensusService: submit, get transaction with proof, get/list blocks, status, validators, epochs, evidence) through the generated deserializer and the service\'s validation and handlers',
  sources: ['services/consensus/api.ts', 'services/consensus/mempool.ts', 'libs/gen/btcfed/v1/consensus.pb.ts'],
  generate: requests.map(([i, r]) => Uint8Array.from([i, ...protoBytes(METHODS[i]!.codec.encode as (m: unknown) => { finish(): Uint8Array }, r)])),
  run,
  refusal: (err) => err instanceof Refused,
};
