// Byzantine behaviours, injected at the simulated network edge of a member (never inside
// the engine): an equivocating leader sends two different signed proposals to the two
// halves of the members; a double voter also votes for every proposal and QC it hears of;
// a forking leader proposes a sibling of the highQC block and drives it through the phases
// itself; a stalling leader (simulator.ts transmit) never announces the QCs of its views.
// Silent members simply never boot. Must never forge another member's signature.

import { bytesEqual, toHex as toHexKey } from '../bytes.ts';
import { Phase, type Block, type ConsensusMessage, type Proposal, type QcAnnounce, type QuorumCert, type Vote } from '../types.ts';
import { buildBlock, type Member } from './members.ts';
import type { SimScheme } from './schemes.ts';

export interface Outgoing {
  /** Target instances, each with the message it receives. */
  to: number[];
  message: ConsensusMessage;
}

/** The equivocator's broadcast: half the targets get the real proposal, half a twin block. */
export function equivocate(m: Member, p: Proposal, targets: number[], scheme: SimScheme): Outgoing[] {
  const h = p.block.header;
  const alt = buildBlock(scheme, h.chainId, h.proposer, `evil${m.id}`, h.view, h.parentHash, h.height - 1, h.stateHash, h.timestampMs);
  m.disk.blocks.set(toHexKey(alt.hash), alt);
  const signature = scheme.sign(m.identity, { kind: 'proposal', epoch: 0, view: p.view, blockHash: alt.hash, justify: p.justify });
  const second: Proposal = { ...p, block: alt, signature };
  return [
    { to: targets.filter((_, i) => i % 2 === 0), message: p },
    { to: targets.filter((_, i) => i % 2 === 1), message: second },
  ];
}

/** Extra votes a double voter sends on hearing a message; the leader identity is the target. */
export function doubleVotes(m: Member, msg: ConsensusMessage, scheme: SimScheme): Vote[] {
  const vote = (phase: Phase, view: number, blockHash: Uint8Array): Vote => ({
    type: 'vote',
    epoch: 0,
    phase,
    view,
    blockHash,
    sender: m.identity,
    signature: scheme.sign(m.identity, { kind: 'vote', epoch: 0, phase, view, blockHash }),
  });
  switch (msg.type) {
    case 'proposal':
      return [vote(Phase.PREPARE, msg.view, msg.block.hash)];
    case 'qc':
      if (msg.qc.phase === Phase.PREPARE) return [vote(Phase.PRE_COMMIT, msg.qc.view, msg.qc.blockHash)];
      if (msg.qc.phase === Phase.PRE_COMMIT) return [vote(Phase.COMMIT, msg.qc.view, msg.qc.blockHash)];
      return [];
    case 'vote':
    case 'new-view':
      return [];
  }
}


/**
 * A forking leader: instead of its engine's proposal it proposes a sibling of the highQC
 * block (on the grandparent, justified by the grandparent's older prepareQC), collects the
 * votes for it itself and announces the QCs. The lock rule is exactly what stops honest
 * members from voting for it; without the lock it forks the chain.
 */
export class ForkingLeader {
  readonly #m: Member;
  readonly #scheme: SimScheme;
  readonly #quorum: number;
  readonly #prepareQCs = new Map<string, QuorumCert>();
  #fork: { view: number; block: Block; votes: Map<Phase, Map<number, Uint8Array>> } | null = null;

  constructor(m: Member, scheme: SimScheme, quorum: number, genesisQC: QuorumCert) {
    this.#m = m;
    this.#scheme = scheme;
    this.#quorum = quorum;
    this.#prepareQCs.set(toHexKey(genesisQC.blockHash), genesisQC);
  }

  /** Replace the engine's proposal by a fork, if the grandparent and its QC are known. */
  fork(p: Proposal): Proposal | null {
    const parent = this.#m.disk.blocks.get(toHexKey(p.justify.blockHash));
    const grand = parent && this.#m.disk.blocks.get(toHexKey(parent.header.parentHash));
    const justify = grand && this.#prepareQCs.get(toHexKey(grand.hash));
    if (!grand || !justify) return null;
    const h = p.block.header;
    const block = buildBlock(this.#scheme, h.chainId, h.proposer, `fork${this.#m.id}`, p.view, grand.hash, grand.header.height, grand.header.stateHash, h.timestampMs);
    this.#m.disk.blocks.set(toHexKey(block.hash), block);
    this.#fork = { view: p.view, block, votes: new Map() };
    this.#addVote(Phase.PREPARE, this.#m.identity, this.#sign(Phase.PREPARE));
    const signature = this.#scheme.sign(this.#m.identity, { kind: 'proposal', epoch: 0, view: p.view, blockHash: block.hash, justify });
    return { type: 'proposal', view: p.view, block, justify, sender: this.#m.identity, signature };
  }

  /** Watch incoming traffic; returns QC announcements to broadcast. */
  observe(msg: ConsensusMessage): QcAnnounce[] {
    if (msg.type === 'qc' && msg.qc.phase === Phase.PREPARE) this.#prepareQCs.set(toHexKey(msg.qc.blockHash), msg.qc);
    const f = this.#fork;
    if (msg.type !== 'vote' || !f || msg.view !== f.view || !bytesEqual(msg.blockHash, f.block.hash)) return [];
    if (!this.#scheme.verify(msg)) return [];
    return this.#addVote(msg.phase, msg.sender, msg.signature);
  }

  #sign(phase: Phase): Uint8Array {
    const f = this.#fork!;
    return this.#scheme.sign(this.#m.identity, { kind: 'vote', epoch: 0, phase, view: f.view, blockHash: f.block.hash });
  }

  #addVote(phase: Phase, sender: number, signature: Uint8Array): QcAnnounce[] {
    const f = this.#fork!;
    let votes = f.votes.get(phase);
    if (!votes) f.votes.set(phase, (votes = new Map()));
    if (votes.size >= this.#quorum) return [];
    votes.set(sender, signature);
    if (votes.size < this.#quorum) return [];
    const signers = [...votes.keys()].sort((a, b) => a - b);
    const qc: QuorumCert = { phase, view: f.view, blockHash: f.block.hash, signers, signatures: signers.map((s) => votes.get(s)!) };
    const out: QcAnnounce[] = [{ type: 'qc', epoch: 0, qc, sender: this.#m.identity }];
    if (phase !== Phase.COMMIT) out.push(...this.#addVote((phase + 1) as Phase, this.#m.identity, this.#sign((phase + 1) as Phase)));
    return out;
  }
}
