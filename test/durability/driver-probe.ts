// A probe process for test/durability.test.ts: four real consensus drivers (real LMDB block
// stores, real SLH-DSA, real engine) in one process, where every consensus message member 0
// sends is also written to a TCP socket, so that a system-call trace shows where each send sits
// relative to member 0's LMDB writes and fsyncs. Runs until it has seen `--commits` commits.
//
//   node test/durability/driver-probe.ts --dir DIR --port PORT [--commits N]

import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { blockHash, createSlhDsa } from '#libs/crypto/index.ts';
import { genesisBlock, type SignRequest } from '#libs/hotstuff/index.ts';
import { signingBytesOfRequest, type FrameLimits } from '#libs/wire/index.ts';
import { BlockStore } from '../../services/consensus/block-store.ts';
import { ConsensusDriver } from '../../services/consensus/driver.ts';
import { Inbound } from '../../services/consensus/inbound.ts';
import { Mempool } from '../../services/consensus/mempool.ts';
import { systemClock, type TransportPort } from '../../services/consensus/ports.ts';
import { SignatureVerifier } from '../../services/consensus/verifier.ts';

const { values } = parseArgs({ options: { dir: { type: 'string' }, port: { type: 'string' }, commits: { type: 'string' } } });
const N = 4;
const CHAIN = 'durability-probe';
const want = Number(values.commits ?? 3);
const dsa = createSlhDsa();
const keys = Array.from({ length: N }, () => dsa.generateKeyPair());
const log = pino({ level: 'silent' });
const limits: FrameLimits = { chainId: CHAIN, validatorCount: N, signatureBytes: dsa.signatureBytes, maxBlockTxs: 100,
  maxBlockBytes: 1 << 16, maxFrameBytes: 8 << 20, maxSyncBlocks: 64, hashBlock: blockHash };

const socket = net.connect(Number(values.port), '127.0.0.1');
await new Promise((r) => socket.once('connect', r));
socket.setNoDelay(true);

const inbounds: Inbound[] = [];
const stores: BlockStore[] = [];
const drivers: ConsensusDriver[] = [];
let commits = 0;
const deliver = (to: number, frame: Uint8Array, from: number) => setImmediate(() => inbounds[to]!.onFrame(from, frame));
for (let i = 0; i < N; i++) {
  const transport: TransportPort = {
    send: (to, frame) => deliver(to, frame, i),
    broadcast: (frame) => { for (let j = 0; j < N; j++) if (j !== i) deliver(j, frame, i); },
  };
  const store = new BlockStore({ path: path.join(values.dir!, `m${i}`), limits, hashBlock: blockHash });
  const pool = new Mempool({ maxTxs: 100, maxBytes: 1 << 16, maxTxBytes: 1024 });
  const verifier = new SignatureVerifier({ chainId: CHAIN, publicKeys: keys.map((k) => k.publicKey), dsa, genesisHash: genesisBlock(CHAIN, blockHash).hash });
  const signer = { sign: (req: SignRequest) => dsa.sign(keys[i]!.secretKey, signingBytesOfRequest(CHAIN, req)) };
  const driver = new ConsensusDriver(
    { engine: { chainId: CHAIN, validatorCount: N, self: i, timeouts: { baseMs: 3000, multiplier: 1.5, capMs: 10_000 } }, maxBlockTxs: 100, maxBlockBytes: 1 << 16 },
    { store, pool, verifier, signer, transport, clock: systemClock, log,
      observer: {
        // Member 0's consensus messages also go to the socket, right when the driver sends them.
        ...(i === 0 ? { sent: (m) => { socket.write(m.type === 'vote' ? `vote ${m.view} ${m.phase}\n` : `${m.type}\n`); } } : {}),
        committed: () => { if (i === 0 && ++commits >= want) void finish(); },
      } },
  );
  stores.push(store);
  drivers.push(driver);
  inbounds.push(new Inbound({ limits, driver, pool, transport, clock: systemClock, log }));
}
for (const d of drivers) d.start();

async function finish(): Promise<void> {
  for (const d of drivers) d.stop();
  await Promise.all(stores.map((s) => s.close()));
  socket.end(() => process.exit(0));
}
