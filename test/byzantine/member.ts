// The Byzantine member: m3 with its real SLH-DSA key, speaking the real wire protocol through
// m3's real gateway (so every frame crosses real libp2p to the honest members). It runs the
// project's own honest pieces — ConsensusDriver, Inbound, a real LMDB BlockStore, the real
// SignatureVerifier — composed as services/consensus/main.ts composes them, except for two things:
// its signer is the raw key (no voting rules: it signs whatever it is asked to), and its
// transport is scripted. All misbehaviour lives in the Script (drop, rewrite, duplicate frames)
// and in `inject` (raw frames built with libs/wire and signed with the key), never in honest code.

import fs from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import { blockHash, createSlhDsa, paramSpec, toHex } from '#libs/crypto/index.ts';
import { call, createClient } from '#libs/rpc/index.ts';
import { fetchConfig, memberSecurityFromDir } from '#libs/service/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import { decodeFrame, encodeFrame, signingBytesOfRequest, type Frame, type FrameLimits } from '#libs/wire/index.ts';
import { GatewayServiceClient } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { StoreServiceClient } from '#libs/gen/btcfed/v1/store.pb.ts';
import { openKey } from '../../services/signer/keyfile.ts';
import { signerPassphrasePath } from '../../cli/member.ts';
import { BlockStore } from '../../services/consensus/block-store.ts';
import { ConsensusDriver } from '../../services/consensus/driver.ts';
import { GatewayLink } from '../../services/consensus/gateway-link.ts';
import { Inbound } from '../../services/consensus/inbound.ts';
import { Mempool } from '../../services/consensus/mempool.ts';
import { systemClock, type TransportPort } from '../../services/consensus/ports.ts';
import { MAX_SYNC_BLOCKS } from '../../services/consensus/sync.ts';
import { ConsensusEpochs } from '../../services/consensus/epochs.ts';

/**
 * Frames waiting in m3's link to its gateway at which a flood waits (paced): a flood faster than
 * m3's gateway takes frames only grows m3's own buffer (the link keeps up to 4,096, dropping the
 * oldest), which then reaches the honest members in the next scenario's window. The honest members
 * see no less: m3's gateway still has frames to send the whole time.
 */
const FLOOD_BACKLOG = 64;

const BIG_MESSAGES = { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 };

/** Where a frame the honest pieces want to send goes: one validator, or all of them. */
export type Dest = number | 'all';
export interface Outgoing { to: Dest; bytes: Uint8Array }

/** The misbehaviour: rewrites what the member's honest pieces send and what reaches them. */
export interface Script {
  /** The frames to send instead of `frame` (return [] to withhold it); undefined sends it as is. */
  outbound?(to: Dest, frame: Frame, bytes: Uint8Array): Outgoing[] | undefined;
  /** false swallows an inbound frame before the honest pieces see it. */
  inbound?(from: number, frame: Frame | undefined, bytes: Uint8Array): boolean;
}

/** A TransportPort over the gateway link that lets the script see and rewrite every frame. */
class ScriptedTransport implements TransportPort {
  readonly #link: GatewayLink;
  readonly #limits: FrameLimits;
  script: Script = {};
  constructor(link: GatewayLink, limits: FrameLimits) { this.#link = link; this.#limits = limits; }
  send(to: number, frame: Uint8Array): void { this.#out(to, frame); }
  broadcast(frame: Uint8Array): void { this.#out('all', frame); }
  #out(to: Dest, bytes: Uint8Array): void {
    const rewrite = this.script.outbound;
    const out = rewrite ? rewrite(to, decodeFrame(bytes, this.#limits), bytes) ?? [{ to, bytes }] : [{ to, bytes }];
    for (const o of out) this.raw(o.to, o.bytes);
  }
  /** Straight to the gateway, past the script. */
  raw(to: Dest, bytes: Uint8Array): void {
    if (to === 'all') this.#link.broadcast(bytes); else this.#link.send(to, bytes);
  }
}

export interface ByzantineMemberOptions { memberDir: string; gatewayAddress: string; storeAddress: string }

export class ByzantineMember {
  readonly self: number;
  readonly n: number;
  readonly chainId: string;
  readonly limits: FrameLimits;
  /** The federation's view timer (conf consensus.base_timeout, timeout_multiplier, max_timeout). */
  readonly timeouts: { baseMs: number; multiplier: number; capMs: number };
  readonly driver: ConsensusDriver;
  readonly inbound: Inbound;
  readonly #transport: ScriptedTransport;
  readonly #link: GatewayLink;
  readonly #store: BlockStore;
  readonly #sign: (bytes: Uint8Array) => Promise<Uint8Array>;
  readonly #gateway: GatewayServiceClient;
  readonly #closers: Array<() => void> = [];
  maxFrameBytes = 0;
  /** A fresh SLH-DSA key pair's public key: m3 signs with its secret from the first epoch that seats m3 under it. */
  readonly newKey: () => Uint8Array;

  private constructor(p: {
    self: number; n: number; chainId: string; limits: FrameLimits; timeouts: ByzantineMember['timeouts']; driver: ConsensusDriver; inbound: Inbound; transport: ScriptedTransport;
    link: GatewayLink; gateway: GatewayServiceClient; store: BlockStore; sign: (b: Uint8Array) => Promise<Uint8Array>; closers: Array<() => void>; newKey: () => Uint8Array;
  }) {
    this.newKey = p.newKey;
    this.self = p.self; this.n = p.n; this.chainId = p.chainId; this.limits = p.limits; this.timeouts = p.timeouts; this.driver = p.driver; this.inbound = p.inbound;
    this.#transport = p.transport; this.#link = p.link; this.#gateway = p.gateway; this.#store = p.store; this.#sign = p.sign; this.#closers = p.closers;
  }

  /** Takes over a member whose consensus process has been stopped: its key, its LMDB, its gateway. */
  static async start(o: ByzantineMemberOptions): Promise<ByzantineMember> {
    const sec = memberSecurityFromDir(o.memberDir, 'consensus');
    const storeClient = createClient(StoreServiceClient, o.storeAddress, { security: sec.client });
    const { conf } = await fetchConfig(storeClient);
    storeClient.close();
    const self = conf.validators.findIndex((v) => v.name === conf.node.name);
    const c = conf.consensus;
    const n = conf.validators.length;
    const paramSet = conf.crypto.param_set;
    const dsa = createSlhDsa({ paramSet, backend: conf.crypto.backend });
    const signerDir = path.join(o.memberDir, 'signer');
    const passphrase = (await fs.readFile((await signerPassphrasePath(signerDir))!, 'utf8')).trim();
    const { secretKey } = await openKey(await fs.readFile(path.join(signerDir, 'signer.key'), 'utf8'), passphrase, 'signer.key');
    // The key it signs with: m3's, until an epoch seats m3 under a key a scenario made (nextKeys).
    const keys = { current: secretKey, next: new Map<string, Uint8Array>() };
    const sign = (bytes: Uint8Array) => dsa.sign(keys.current, bytes);
    const wireLimits = { validatorCount: n, signatureBytes: paramSpec(paramSet).signatureBytes, maxBlockTxs: c.max_block_txs, maxBlockBytes: c.max_block_bytes };
    const limits: FrameLimits = { ...wireLimits, chainId: c.chain_id, maxFrameBytes: 64 << 20, maxSyncBlocks: MAX_SYNC_BLOCKS, hashBlock: blockHash };
    const log = pino({ level: process.env.BYZ_LOG ?? 'silent' }).child({ member: conf.node.name, byzantine: true });
    // The member's own LMDB: its last votes are there, so its honest pieces never equivocate by accident.
    const store = new BlockStore({ path: path.join(o.memberDir, 'consensus'), limits: wireLimits, hashBlock: blockHash });
    // The chain's epochs, as main.ts keeps them: a change the federation commits moves m3 on too.
    const epochs = ConsensusEpochs.open({ chainId: c.chain_id, genesis: ValidatorSet.fromConfig(conf.validators), member: conf.node.name, dsa, store });
    const gatewayClient = createClient(GatewayServiceClient, o.gatewayAddress, { security: sec.client, grpcOptions: BIG_MESSAGES });
    let inbound: Inbound | undefined;
    let transport: ScriptedTransport | undefined;
    let member: ByzantineMember | undefined;
    const link = new GatewayLink({
      client: gatewayClient, log,
      onReady: (r) => { if (member) member.maxFrameBytes = r.maxFrameBytes; },
      onFrame: (from, bytes) => {
        let frame: Frame | undefined;
        try { frame = decodeFrame(bytes, limits); } catch { frame = undefined; }
        if (transport?.script.inbound && !transport.script.inbound(from, frame, bytes)) return;
        inbound?.onFrame(from, bytes);
      },
    });
    transport = new ScriptedTransport(link, limits);
    const timeouts = { baseMs: c.base_timeout, multiplier: c.timeout_multiplier, capMs: c.max_timeout };
    const driver = new ConsensusDriver(
      { engine: { chainId: c.chain_id, validatorCount: n, self, timeouts },
        maxBlockTxs: c.max_block_txs, maxBlockBytes: c.max_block_bytes },
      {
        store, pool: new Mempool({ maxTxs: c.mempool_max_txs, maxBytes: c.mempool_max_txs * 1024, maxTxBytes: c.max_tx_bytes }), epochs,
        // No signer rules: the raw key signs whatever the engine (or the script) asks. At an
        // epoch's end it takes the key the next set seats m3 under, when a scenario made it.
        signer: {
          sign: (req) => sign(signingBytesOfRequest(c.chain_id, req)),
          advanceEpoch: async () => {
            const self = epochs.current.set.self;
            const next = self && keys.next.get(self.publicKey.toLowerCase());
            if (next) keys.current = next;
            return { epoch: epochs.current.number, seated: self !== undefined };
          },
        },
        transport, clock: systemClock, log,
      },
    );
    inbound = new Inbound({ limits, driver, pool: driver.pool, transport, clock: systemClock, log });
    member = new ByzantineMember({ self, n, chainId: c.chain_id, limits, timeouts, driver, inbound, transport, link, gateway: gatewayClient, store, sign, closers: [() => gatewayClient.close()],
      newKey: () => {
        const k = dsa.generateKeyPair();
        keys.next.set(toHex(k.publicKey), k.secretKey);
        return k.publicKey;
      } });
    link.start();
    driver.start();
    return member;
  }

  get view(): number { return this.driver.engine.view; }
  /** Who leads `view` as its own engine's schedule says (libs/hotstuff schedule.ts): the record it committed, as the honest members did. */
  leaderOf(view: number): number { return this.driver.engine.leaderOf(view); }
  get attached(): boolean { return this.#link.connected; }

  /** The frames waiting in m3's link to its gateway (queuedFrames without the gateway's queues). */
  get linkFrames(): number { return this.#link.bufferedFrames; }

  /**
   * Frames m3 has sent that have not left it yet: waiting in its link to its gateway, and in its
   * gateway's queue to each peer (ListPeers). While the honest members mute m3 its gateway's
   * queues do not drain, and what an attack left there reaches them once they forgive it.
   */
  async queuedFrames(): Promise<number> {
    const peers = await call(this.#gateway.listPeers.bind(this.#gateway), {}, { deadlineMs: 5000 });
    return this.linkFrames + peers.peers.reduce((sum, p) => sum + p.queuedFrames, 0);
  }

  /** Sets the misbehaviour from now on ({} = behave). */
  play(script: Script): void { this.#transport.script = script; }

  /** Signs bytes with the member's real key. */
  sign(bytes: Uint8Array): Promise<Uint8Array> { return this.#sign(bytes); }

  /** Resolves once m3's link holds fewer than FLOOD_BACKLOG frames: each round of a flood waits here first. */
  async paced(): Promise<void> {
    while (this.#link.bufferedFrames >= FLOOD_BACKLOG) await new Promise((r) => setTimeout(r, 10));
  }

  /** Sends a frame built by the scenario, past the script. */
  inject(to: Dest, frame: Frame | Uint8Array): void {
    this.#transport.raw(to, frame instanceof Uint8Array ? frame : encodeFrame(this.chainId, frame));
  }

  /** Waits until the member is attached to its gateway. */
  async ready(ms = 20_000): Promise<void> {
    const t0 = Date.now();
    while (!this.#link.connected) {
      if (Date.now() - t0 > ms) throw new Error('the Byzantine member could not attach to m3\'s gateway');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  close(): void {
    this.driver.stop();
    this.#link.close();
    for (const c of this.#closers) c();
    this.#store.close();
  }
}
