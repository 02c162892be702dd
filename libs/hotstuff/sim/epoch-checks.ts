// The reconfiguration simulator's vocabulary and invariants (epochs.ts runs it): a scheduled
// change as the simulator carries it in a block (a transaction of its own; the real one is
// libs/validators reconfig-tx.ts, tested there), the set it leads to, and the checkers fed on every
// step — also by tests with crafted inputs, so each can be seen failing. Every violation is a line
// naming the member, the epoch and the height. Must never excuse a violation.

import { toHex } from '../bytes.ts';
import { quorumSize } from '../quorum.ts';
import { Phase, type Block, type QuorumCert } from '../types.ts';
import type { SigningContent, SimScheme } from './schemes.ts';

export type SimChange =
  | { kind: 'add'; name: string; identity: number }
  | { kind: 'remove'; name: string }
  | { kind: 'rotate'; name: string; identity: number };

export interface Validator {
  name: string;
  identity: number;
}

/** The validator set after `ops`: the remaining members in their order, then the added ones. */
export function applyChanges(set: readonly Validator[], ops: readonly SimChange[]): Validator[] {
  const out: Validator[] = [];
  for (const v of set) {
    const op = ops.find((o) => o.name === v.name);
    if (op?.kind === 'remove') continue;
    out.push(op?.kind === 'rotate' ? { name: v.name, identity: op.identity } : v);
  }
  for (const op of ops) if (op.kind === 'add') out.push({ name: op.name, identity: op.identity });
  return out;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const CHANGE_PREFIX = 'reconfig|';

export function changeTx(epoch: number, ops: readonly SimChange[]): Uint8Array {
  return enc.encode(`${CHANGE_PREFIX}${epoch}|${JSON.stringify(ops)}`);
}

export function changeOf(b: Block): { epoch: number; ops: SimChange[] } | null {
  for (const tx of b.txs) {
    const s = dec.decode(tx);
    if (!s.startsWith(CHANGE_PREFIX)) continue;
    const [epoch, json] = [s.slice(CHANGE_PREFIX.length, s.indexOf('|', CHANGE_PREFIX.length)), s.slice(s.indexOf('|', CHANGE_PREFIX.length) + 1)];
    return { epoch: Number(epoch), ops: JSON.parse(json) as SimChange[] };
  }
  return null;
}

/**
 * The invariants, fed by the simulator (and by tests with crafted inputs, so each can be seen
 * failing). Every violation is a line naming the member, the epoch and the height.
 */
export class EpochCheckers {
  readonly violations: string[] = [];
  readonly #scheme: SimScheme;
  readonly #byHeight = new Map<number, string>();
  /** Height of each ended epoch's last block, as the first member to end it saw it. */
  readonly lastHeight = new Map<number, number>();
  readonly #signed = new Map<string, string>();

  constructor(scheme: SimScheme, genesis: Block) {
    this.#scheme = scheme;
    this.#byHeight.set(0, toHex(genesis.hash));
  }

  /** Agreement, order, the block's epoch, and a commitQC that is a quorum of `set` (epoch `epoch`'s validators). Returns the new tip. */
  onCommit(name: string, tip: { height: number; hex: string }, epoch: number, set: readonly Validator[], blocks: readonly Block[], qc: QuorumCert): { height: number; hex: string } {
    const votesOk = qc.phase === Phase.COMMIT && qc.signers.length >= quorumSize(set.length) && qc.signatures.length === qc.signers.length && qc.signers.every((s, i) =>
      s < set.length && this.#scheme.verifyAs(set[s]!.identity, { type: 'vote', epoch, phase: qc.phase, view: qc.view, blockHash: qc.blockHash, sender: s, signature: qc.signatures[i]! }));
    if (!votesOk) this.violations.push(`quorum: ${name} committed with a QC that is not a quorum of epoch ${epoch}`);
    for (const b of blocks) {
      const hex = toHex(b.hash);
      if (b.header.height !== tip.height + 1 || toHex(b.header.parentHash) !== tip.hex) {
        this.violations.push(`order: ${name} committed height ${b.header.height} after ${tip.height}`);
      }
      if (b.header.epoch !== epoch) this.violations.push(`epochs: ${name} committed a block of epoch ${b.header.epoch} in epoch ${epoch}`);
      const other = this.#byHeight.get(b.header.height);
      if (other === undefined) this.#byHeight.set(b.header.height, hex);
      else if (other !== hex) this.violations.push(`agreement: ${name} height ${b.header.height}: ${hex.slice(0, 12)} vs ${other.slice(0, 12)}`);
      tip = { height: b.header.height, hex };
    }
    return tip;
  }

  /** Every member ends an epoch at the same height, with the change scheduled for it. */
  onEpochEnded(name: string, epoch: number, last: Block, scheduled: readonly SimChange[] | undefined): void {
    const h = last.header.height;
    const known = this.lastHeight.get(epoch);
    if (known === undefined) this.lastHeight.set(epoch, h);
    else if (known !== h) this.violations.push(`epochs: ${name} ended epoch ${epoch} at height ${h}, another member at ${known}`);
    const change = changeOf(last);
    if (!change || JSON.stringify(change.ops) !== JSON.stringify(scheduled ?? null)) {
      this.violations.push(`epochs: ${name} ended epoch ${epoch} with a block that does not carry its scheduled change`);
    }
  }

  /** One signature per (identity, epoch, kind, view, phase); a NEW-VIEW may be re-signed with a higher highQC (the signer's rule). */
  onSign(name: string, identity: number, content: SigningContent): void {
    const slot = `${identity}:${content.epoch}:${content.kind}:${content.view}:${content.kind === 'vote' ? content.phase : 0}`;
    const what = content.kind === 'new-view' ? `${content.highQC.view}` : toHex(content.blockHash);
    const earlier = this.#signed.get(slot);
    if (earlier !== undefined && earlier !== what && content.kind !== 'new-view') this.violations.push(`double-sign: ${name} ${slot}`);
    this.#signed.set(slot, what);
  }
}
