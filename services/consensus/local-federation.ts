// Four consensus drivers in one process over an in-memory transport, with real SLH-DSA signatures,
// real LMDB stores and real mempools. The signer here is a plain key (no safety rules): the real
// signer service is exercised by the end-to-end tests. The driver tests build on it
// (driver-harness.ts), and so does the bench of one member's transaction path (bench/member-path.ts).

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { blockHash, createSlhDsa, type KeyPair } from '#libs/crypto/index.ts';
import { genesisBlock, type Block, type SignRequest } from '#libs/hotstuff/index.ts';
import { signingBytesOfRequest, type FrameLimits } from '#libs/wire/index.ts';
import { BlockStore } from './block-store.ts';
import { ConsensusDriver } from './driver.ts';
import { Inbound } from './inbound.ts';
import { Mempool } from './mempool.ts';
import { systemClock, type TransportPort } from './ports.ts';
import { SignatureVerifier } from './verifier.ts';

export const N = 4;
export const CHAIN = 'driver-test';
export const dsa = createSlhDsa();
export const keys: KeyPair[] = Array.from({ length: N }, () => dsa.generateKeyPair());
/** Frames the members sent to peers outside the validator set. */
export const toOutside: { from: number; to: number; frame: Uint8Array }[] = [];

export interface Member {
  driver: ConsensusDriver; inbound: Inbound; pool: Mempool; store: BlockStore; commits: Block[]; sent: number; down: boolean;
  /** What the member told its transport to mute, what its inbound path refused, which views it gave up. */
  mutes: Array<[number, number]>; refused: Array<[number, string]>; skipped: Array<[number, number, string]>;
}

/** Stops every member's driver and closes its block store. */
export async function stopAll(members: readonly Member[]): Promise<void> {
  // Down first: a frame already on its way (setImmediate) must not reach a store being closed.
  const drained = members.map((m) => { m.down = true; return m.driver.stop(); });
  // The writes in flight end before the stores close.
  await Promise.all(drained);
  await Promise.all(members.map((m) => m.store.close()));
}

export interface LocalFederationOptions {
  log: Logger;
  /** Whose key member i's signer holds (its own unless a test says otherwise). */
  keyOf?: (i: number) => number;
  /** Member i's store directory (a new one if undefined). */
  dirOf?: (i: number) => string | undefined;
  /** A frame the network loses. */
  drop?: (from: number, to: number, frame: Uint8Array) => boolean;
  /** consensus.max_block_txs and max_block_bytes (1,000 and 1 MiB unless given). */
  maxBlockTxs?: number;
  maxBlockBytes?: number;
  /** consensus.mempool_max_txs (10,000 unless given). */
  poolMaxTxs?: number;
  /** How member i's signer signs `bytes` with `key` (on the thread pool unless given). */
  sign?: (i: number, key: KeyPair, bytes: Uint8Array) => Promise<Uint8Array>;
  /** Whether each member keeps the blocks it committed in `commits` (true unless given). */
  keepCommits?: boolean;
  /** Member i committed `blocks`. */
  committed?: (i: number, blocks: readonly Block[]) => void;
  /** Member i moved to `view` (`cause`: why). */
  viewChanged?: (i: number, view: number, cause: string) => void;
}

/** Builds the four members (not started); `dirs` are their store directories. */
export async function localFederation(o: LocalFederationOptions): Promise<{ members: Member[]; dirs: string[]; restart(i: number): Promise<void> }> {
  const { log, keyOf = (i: number) => i, dirOf = () => undefined, drop, maxBlockTxs = 1000, maxBlockBytes = 1 << 20 } = o;
  const sign = o.sign ?? ((_i: number, key: KeyPair, bytes: Uint8Array) => dsa.sign(key.secretKey, bytes));
  const members: Member[] = [];
  const memberDirs: string[] = [];
  const dirs: string[] = [];
  const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs,
    maxBlockBytes, maxFrameBytes: Math.max(8 << 20, 2 * maxBlockBytes), maxSyncBlocks: 64, hashBlock: blockHash };
  const deliver = (from: number, to: number, frame: Uint8Array) => {
    if (to >= N) { toOutside.push({ from, to, frame }); return; } // an answer to a peer outside the set (an observer)
    if (drop?.(from, to, frame)) return;
    setImmediate(() => { if (!members[to]!.down && !members[from]!.down) members[to]!.inbound.onFrame(from, frame); });
  };
  const build = (i: number, dir: string): Member => {
    const mutes: Array<[number, number]> = [];
    const refused: Array<[number, string]> = [];
    const skipped: Array<[number, number, string]> = [];
    const transport: TransportPort = {
      send: (to, frame) => deliver(i, to, frame),
      broadcast: (frame) => { for (let j = 0; j < N; j++) if (j !== i) deliver(i, j, frame); },
      mute: (peer, ms) => { mutes.push([peer, ms]); },
    };
    const store = new BlockStore({ path: dir, limits, hashBlock: blockHash });
    const poolMaxTxs = o.poolMaxTxs ?? 10_000;
    const pool = new Mempool({ maxTxs: poolMaxTxs, maxBytes: Math.max(1 << 24, poolMaxTxs * 1024), maxTxBytes: 1024 });
    const verifier = new SignatureVerifier({ chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa, genesisHash: genesisBlock(CHAIN, blockHash).hash });
    const signer = { sign: (req: SignRequest) => sign(i, keys[keyOf(i)]!, signingBytesOfRequest(CHAIN, req)) };
    const commits: Block[] = [];
    let member: Member | undefined;
    const driver = new ConsensusDriver(
      { engine: { chainId: CHAIN, validatorCount: N, self: i, timeouts: { baseMs: 1500, multiplier: 1.5, capMs: 10_000 } }, maxBlockTxs, maxBlockBytes },
      { store, pool, verifier, signer, transport, clock: systemClock, log: log.child({ member: i }),
        observer: { committed: (bs) => { if (o.keepCommits !== false) commits.push(...bs); o.committed?.(i, bs); }, viewChanged: (v, _leader, cause) => o.viewChanged?.(i, v, cause), sent: () => { member!.sent++; }, viewSkipped: (v, leader, why) => { skipped.push([v, leader, why]); } } },
    );
    const inbound = new Inbound({ limits, driver, pool, transport, clock: systemClock, log,
      blockTime: { driftMs: 2000, maxDelayMs: 30_000 }, observer: { frameRejected: (from, why) => { refused.push([from, why]); }, invalidSignature: (from) => { refused.push([from, 'refused:invalid_signature']); } } });
    member = { driver, inbound, pool, store, commits, sent: 0, down: false, mutes, refused, skipped };
    return member;
  };
  for (let i = 0; i < N; i++) {
    const dir = dirOf(i) ?? await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-driver-'));
    dirs.push(dir);
    memberDirs.push(dir);
    members.push(build(i, dir));
  }
  return {
    members,
    dirs,
    async restart(i) {
      // The old instance first goes down: a frame in flight must not reach a store being closed.
      members[i]!.down = true;
      await members[i]!.driver.stop();
      await members[i]!.store.close();
      members[i] = build(i, memberDirs[i]!);
      members[i]!.driver.start();
    },
  };
}
