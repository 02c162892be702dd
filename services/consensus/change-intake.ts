// Reconfigurations forwarded by other validators (wire ReconfigForward). An operator submits a
// change to one member; that member passes it to every validator, so whichever leads next proposes
// it, not only the member it was given to (docs/reconfiguration.md, "A change travels to every
// validator"). What a sender controls here is a transaction carrying up to a quorum of signatures,
// so the checks run cheapest first and the expensive one at most once per sender per epoch:
//   1. the frame's epoch is ours, no epoch is ending, and this member runs epochs at all;
//   2. the same change as the one pending here (the submitter sends it again now and then): a
//      useless message, nothing more is read;
//   3. the sender has had its one check this epoch: useless (sixteen a second are free, a flood
//      spends its budget and is then struck — penalties.ts);
//   4. another change is already pending for this epoch (one per epoch): useless, not checked;
//   5. its size within what a quorum's approvals of this set can take;
//   6. decoded, checked against this epoch's set and rules, and its approvals verified
//      (checkedChange, the one check the operator's own submission goes through).
// A change that fails 5 or 6 is an offence — an honest sender checked the same change against the
// same set before it sent it — and a strike. A change that passes is pending here as if it had
// been submitted to this member. Bounded: one entry per validator that has sent one.

import { bytesEqual } from '#libs/crypto/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { MAX_OPS } from '#libs/validators/index.ts';
import type { Epoch } from './epochs.ts';
import { checkedChange, type PendingChange } from './epoch-switch.ts';

/** Bytes a change takes besides its approvals: MAX_OPS operations, each with a key, a peer id and eight addresses of 256 bytes, and more to spare. */
const CHANGE_BYTES = MAX_OPS * 4096 + 1024;
/** Bytes one approval takes besides its signature (its validator index and two lengths). */
const APPROVAL_OVERHEAD = 16;

export interface ChangeIntakeDeps {
  /** The epoch this member runs, or undefined when it runs one epoch only (it takes no change). */
  epoch(): Epoch | undefined;
  /** Set between the end of an epoch and the start of the next. */
  switching(): boolean;
  /** The change pending here, if any. */
  pending(): PendingChange | undefined;
  /** The signature size of this epoch's keys (the parameter set's). */
  signatureBytes: number;
  /** Take `change`: pending here, proposed when this member leads. */
  adopt(change: PendingChange, from: number): void;
  /** An offence: counted, logged, a strike. */
  refuse(from: number, reason: string, detail: Record<string, unknown>): void;
  /** Valid but of no use: counted, tokens of the sender's budget as its `bytes` call for. */
  useless(from: number, reason: string, detail: Record<string, unknown>, bytes: number): void;
}

export class ChangeIntake {
  readonly #d: ChangeIntakeDeps;
  /** Per sender: the epoch in which its one change was checked. */
  readonly #checked = new Map<number, number>();

  constructor(deps: ChangeIntakeDeps) {
    this.#d = deps;
  }

  /** The most bytes a forwarded change of epoch `e` may take: its operations and one approval per validator. */
  maxBytes(e: Epoch): number {
    return CHANGE_BYTES + e.set.n * (this.#d.signatureBytes + APPROVAL_OVERHEAD);
  }

  /** A change `from` forwarded, said to end `epoch`. */
  onForward(from: number, epoch: number, tx: Uint8Array): void {
    const d = this.#d;
    const e = d.epoch();
    if (!e) return d.useless(from, 'reconfig_unavailable', { detail: 'this member runs one epoch only' }, tx.length);
    if (epoch !== e.number) return d.useless(from, 'wrong_epoch', { kind: 'reconfig-forward', epoch, at: e.number }, tx.length);
    if (d.switching()) return d.useless(from, 'reconfig_switching', { detail: `epoch ${e.number} is ending` }, tx.length);
    const pending = d.pending();
    const ours = pending !== undefined && pending.epoch === e.number ? pending : undefined;
    if (ours && bytesEqual(ours.tx, tx)) return d.useless(from, 'duplicate', { kind: 'reconfig-forward', id: ours.id.slice(0, 16) }, tx.length);
    if (this.#checked.get(from) === e.number) return d.useless(from, 'reconfig_spent', { detail: `one change a sender is checked per epoch, and epoch ${e.number}'s was` }, tx.length);
    this.#checked.set(from, e.number);
    if (ours) return d.useless(from, 'reconfig_busy', { detail: `change ${ours.id.slice(0, 16)}… is already pending for epoch ${e.number}` }, tx.length);
    const max = this.maxBytes(e);
    if (tx.length > max) return d.refuse(from, 'reconfig_invalid', { why: `${tx.length} bytes, more than the ${max} a change of ${e.set.n} validators takes` });
    let change: PendingChange;
    try {
      change = checkedChange(e, tx, undefined);
    } catch (err) {
      return d.refuse(from, 'reconfig_invalid', { why: errorMessage(err) });
    }
    d.adopt(change, from);
  }
}

