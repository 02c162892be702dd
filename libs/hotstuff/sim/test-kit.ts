// Test support: crafts signed messages and QCs with the fake scheme and drives one engine
// by hand, answering its signature and payload requests at once, so unit tests can put an
// engine in an exact state and look at exactly what it does. Must never be imported by
// the engine or by a driver.

import { createEngine, restoreEngine, type HotStuffEngine } from '../engine.ts';
import type { EngineAction, EngineConfig, EngineDeps, EngineEvent, PersistedRecord, RejectReason } from '../events.ts';
import { genesisBlock, genesisQC } from '../genesis.ts';
import { toHex } from '../bytes.ts';
import { roundRobinLeader } from '../quorum.ts';
import { Phase, type Block, type ConsensusMessage, type NewView, type Proposal, type QuorumCert, type Vote } from '../types.ts';
import { buildBlock } from './members.ts';
import { contentOfRequest, createFakeScheme } from './schemes.ts';

export const CHAIN = 'kit';

export class Kit {
  readonly n: number;
  readonly scheme;
  readonly deps: EngineDeps;
  readonly genesis: Block;
  readonly gqc: QuorumCert;

  /** `endsEpoch`: which blocks carry a reconfiguration (the engine ends its epoch at the first it commits). */
  constructor(n: number, endsEpoch?: (b: Block) => boolean) {
    this.n = n;
    this.scheme = createFakeScheme(CHAIN, n, 42);
    this.deps = { hashBlock: this.scheme.hashBlock, verify: this.scheme.verify, ...(endsEpoch ? { endsEpoch } : {}) };
    this.genesis = genesisBlock(CHAIN, this.scheme.hashBlock);
    this.gqc = genesisQC(this.genesis);
  }

  config(self: number, extra: Partial<EngineConfig> = {}): EngineConfig {
    return { chainId: CHAIN, validatorCount: this.n, self, timeouts: { baseMs: 100, multiplier: 2, capMs: 1000 }, ...extra };
  }

  engine(self: number, extra: Partial<EngineConfig> = {}): Driven {
    return new Driven(this, self, createEngine(this.config(self, extra), this.deps));
  }

  /** A fresh engine whose committed log already ends at `checkpoint` (a join from a checkpoint). */
  joined(self: number, checkpoint: Block): Driven {
    return new Driven(this, self, createEngine(this.config(self), this.deps, checkpoint));
  }

  restore(self: number, record: PersistedRecord): Driven {
    const d = new Driven(this, self, restoreEngine(this.config(self), this.deps, record));
    d.record = record;
    return d;
  }

  /** `empty`: a block of an epoch's suffix (above a block carrying a change), with no transactions. */
  block(view: number, parent: Block, tag = 'a', empty = false): Block {
    const proposer = roundRobinLeader(view, this.n);
    return buildBlock(this.scheme, CHAIN, proposer, tag, view, parent.hash, parent.header.height, parent.header.stateHash, view, 0, empty);
  }

  proposal(view: number, block: Block, justify: QuorumCert, sender = roundRobinLeader(view, this.n)): Proposal {
    const signature = this.scheme.sign(sender, { kind: 'proposal', epoch: 0, view, blockHash: block.hash, justify });
    return { type: 'proposal', view, block, justify, sender, signature };
  }

  vote(phase: Phase, view: number, block: Block, sender: number): Vote {
    const signature = this.scheme.sign(sender, { kind: 'vote', epoch: 0, phase, view, blockHash: block.hash });
    return { type: 'vote', epoch: 0, phase, view, blockHash: block.hash, sender, signature };
  }

  qc(phase: Phase, view: number, block: Block, signers: number[]): QuorumCert {
    const sorted = [...signers].sort((a, b) => a - b);
    return { phase, view, blockHash: block.hash, signers: sorted, signatures: sorted.map((s) => this.vote(phase, view, block, s).signature) };
  }

  newView(view: number, highQC: QuorumCert, sender: number): NewView {
    const signature = this.scheme.sign(sender, { kind: 'new-view', epoch: 0, view, highQC });
    return { type: 'new-view', epoch: 0, view, highQC, sender, signature };
  }
}

/** One engine, with signature requests answered immediately and a log of everything it did. */
export class Driven {
  readonly kit: Kit;
  readonly self: number;
  readonly engine: HotStuffEngine;
  readonly log: EngineAction[] = [];
  /** Last durable record, as a driver would keep it. */
  record: PersistedRecord;
  autoSign = true;

  constructor(kit: Kit, self: number, engine: HotStuffEngine) {
    this.kit = kit;
    this.self = self;
    this.engine = engine;
    this.record = { safety: { ...engine.safety }, committed: engine.committed, blocks: [] };
  }

  /** Step and answer `sign` requests (recursively); returns every action produced. */
  step(event: EngineEvent): EngineAction[] {
    const out: EngineAction[] = [];
    const queue: EngineEvent[] = [event];
    while (queue.length > 0) {
      const actions = this.engine.step(queue.shift()!);
      for (const a of actions) {
        out.push(a);
        if (a.type === 'persist') {
          const dropped = new Set(a.dropped.map(toHex));
          this.record = { ...this.record, safety: a.safety, blocks: [...this.record.blocks, ...a.blocks].filter((b) => !dropped.has(toHex(b.hash))) };
        }
        if (a.type === 'commit') this.record = { ...this.record, committed: a.blocks[a.blocks.length - 1]! };
        if (a.type === 'sign' && this.autoSign) {
          const signature = this.kit.scheme.sign(this.self, contentOfRequest(a.request));
          queue.push({ type: 'signature-ready', requestId: a.requestId, signature });
        }
      }
    }
    this.log.push(...out);
    return out;
  }

  message(m: ConsensusMessage): EngineAction[] {
    return this.step({ type: 'message', message: m });
  }
}

export function reasons(actions: EngineAction[]): RejectReason[] {
  return actions.flatMap((a) => (a.type === 'rejected' ? [a.reason] : []));
}

export function ofType<T extends EngineAction['type']>(actions: EngineAction[], type: T): Extract<EngineAction, { type: T }>[] {
  return actions.filter((a): a is Extract<EngineAction, { type: T }> => a.type === type);
}

export function voteRequests(actions: EngineAction[]): { phase: Phase; view: number }[] {
  return ofType(actions, 'sign').flatMap((a) => (a.request.kind === 'vote' ? [{ phase: a.request.phase, view: a.request.view }] : []));
}

export { Phase };
