// The driver tests' federation: four drivers in one process over an in-memory transport, with real
// SLH-DSA signatures, real LMDB stores and real mempools. The signer here is a plain key (no safety
// rules): the real signer service is exercised by the end-to-end tests.

import { after } from 'node:test';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
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
/** Warnings and worse are kept (for the tests that check what an operator is told); TEST_LOG=level prints them too. */
export const warnings: Record<string, unknown>[] = [];
export const log = pino({ level: process.env.TEST_LOG ?? 'warn' }, {
  write: (line: string) => {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (Number(entry['level']) >= 40) warnings.push(entry);
    if (process.env.TEST_LOG) process.stderr.write(line);
  },
});
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

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
  members.forEach((m) => { m.down = true; m.driver.stop(); });
  await Promise.all(members.map((m) => m.store.close()));
}

/**
 * `keyOf(i)`: whose key member i's signer holds (its own unless a test says otherwise); `dirOf(i)`:
 * its store's directory (a new one if undefined); `drop(from, to, frame)`: a frame the network loses.
 */
export async function federation(keyOf: (i: number) => number = (i) => i, dirOf: (i: number) => string | undefined = () => undefined,
  drop?: (from: number, to: number, frame: Uint8Array) => boolean): Promise<{ members: Member[]; restart(i: number): Promise<void> }> {
  const members: Member[] = [];
  const memberDirs: string[] = [];
  const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 1000,
    maxBlockBytes: 1 << 20, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };
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
    const pool = new Mempool({ maxTxs: 10_000, maxBytes: 1 << 24, maxTxBytes: 1024 });
    const verifier = new SignatureVerifier({ chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa, genesisHash: genesisBlock(CHAIN, blockHash).hash });
    const signer = { sign: (req: SignRequest) => dsa.sign(keys[keyOf(i)]!.secretKey, signingBytesOfRequest(CHAIN, req)) };
    const commits: Block[] = [];
    let member: Member | undefined;
    const driver = new ConsensusDriver(
      { engine: { chainId: CHAIN, validatorCount: N, self: i, timeouts: { baseMs: 1500, multiplier: 1.5, capMs: 10_000 } }, maxBlockTxs: 1000, maxBlockBytes: 1 << 20 },
      { store, pool, verifier, signer, transport, clock: systemClock, log: log.child({ member: i }),
        observer: { committed: (bs) => commits.push(...bs), sent: () => { member!.sent++; }, viewSkipped: (v, leader, why) => { skipped.push([v, leader, why]); } } },
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
    async restart(i) {
      // The old instance first goes down: a frame in flight must not reach a store being closed.
      members[i]!.down = true;
      members[i]!.driver.stop();
      await members[i]!.store.close();
      members[i] = build(i, memberDirs[i]!);
      members[i]!.driver.start();
    },
  };
}

export async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
