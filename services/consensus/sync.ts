// Block sync over the consensus protocol: asking a peer for blocks the engine lacks (the
// engine's `fetch` action) and serving such requests from the block store. Responses are
// matched to requests and their QCs verified before the engine sees them; unsolicited or
// late responses are dropped. A response is cut to fit the frame size limit.

import type { Logger } from 'pino';
import { toHex } from '#libs/crypto/index.ts';
import type { Block, EngineEvent, Hash, HotStuffEngine, QuorumCert } from '#libs/hotstuff/index.ts';
import { encodeFrame, type CertifiedBlock } from '#libs/wire/index.ts';
import type { BlockStore } from './block-store.ts';
import type { TransportPort } from './ports.ts';
import type { SignatureVerifier } from './verifier.ts';

export const MAX_SYNC_BLOCKS = 64;
const MAX_PENDING = 256;

export interface SyncOptions {
  chainId: string;
  store: BlockStore;
  engine: HotStuffEngine;
  verifier: SignatureVerifier;
  transport: TransportPort;
  log: Logger;
  deliver(event: EngineEvent): void;
  /** Byte budget of one response (below the gateway's frame limit). */
  maxResponseBytes?: number;
}

interface Pending { from: number; hash: string }

export class SyncClient {
  readonly #o: SyncOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  served = 0;
  dropped = 0;

  constructor(o: SyncOptions) {
    this.#o = o;
  }

  fetch(hash: Hash, from: number, aboveHeight: number): void {
    if (this.#pending.size >= MAX_PENDING) {
      const oldest = this.#pending.keys().next().value!;
      this.#pending.delete(oldest);
    }
    const requestId = this.#nextId++;
    this.#pending.set(requestId, { from, hash: toHex(hash) });
    this.#o.log.debug({ requestId, from, hash: toHex(hash), aboveHeight }, 'fetching blocks');
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, {
      type: 'block-request', requestId, hashes: [hash], fromHeight: aboveHeight, maxBlocks: MAX_SYNC_BLOCKS,
    }));
  }

  /** A response from `from`: checked against what we asked, QCs verified, then handed to the engine. */
  async onResponse(from: number, requestId: number, blocks: readonly CertifiedBlock[]): Promise<void> {
    const p = this.#pending.get(requestId);
    if (!p || p.from !== from) {
      this.dropped++;
      this.#o.log.debug({ from, requestId }, 'unsolicited block response dropped');
      return;
    }
    this.#pending.delete(requestId);
    const qcs: QuorumCert[] = [];
    for (const b of blocks) {
      if (!b.qc) continue;
      const r = await this.#o.verifier.verifyQc(b.qc);
      if (!r.ok) {
        this.#o.log.warn({ from, requestId, signer: r.sender }, 'block response with an invalid QC dropped');
        this.dropped++;
        return;
      }
      qcs.push(b.qc);
    }
    this.#o.deliver({ type: 'blocks-fetched', blocks: blocks.map((b) => b.block), qcs });
  }

  /** Serves a request: each asked-for block and its ancestors above `fromHeight`, oldest first. */
  onRequest(from: number, requestId: number, hashes: readonly Hash[], fromHeight: number, maxBlocks: number): void {
    const budget = this.#o.maxResponseBytes ?? 8 * 1024 * 1024;
    const out: CertifiedBlock[] = [];
    let bytes = 0;
    for (const hash of hashes) {
      const chain: Block[] = [];
      let b = this.#block(hash);
      while (b && b.header.height > fromHeight && chain.length < maxBlocks) {
        chain.push(b);
        b = this.#block(b.header.parentHash);
      }
      // Closest to the requester's known height first, so a cut response still connects.
      for (const block of chain.reverse()) {
        const size = block.txs.reduce((n, tx) => n + tx.length, 512);
        if (out.length > 0 && bytes + size > budget) break;
        out.push({ block, qc: this.#o.store.qcFor(block.hash) });
        bytes += size;
      }
    }
    this.served++;
    this.#o.transport.send(from, encodeFrame(this.#o.chainId, { type: 'block-response', requestId, blocks: out }));
  }

  #block(hash: Hash): Block | undefined {
    return this.#o.engine.block(toHex(hash)) ?? this.#o.store.blockByHash(hash);
  }
}
