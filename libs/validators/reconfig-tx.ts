// A reconfiguration as it travels in a block: one transaction holding the change's canonical
// bytes and its approvals. Its own tag leads, so an ordinary transaction can never be read as one
// (the mempool refuses client transactions that begin with it) and a block's change is found by
// looking at the first bytes of each transaction only. The layout (libs/crypto/canonical.ts):
//
//   reconfig-tx = str("btcfed/v1/reconfig-tx") ‖ field(reconfig) ‖ u32(count) ‖ approval₁ ‖ … ‖ approval_count
//     approval  = field(u32(validator) ‖ field(signature))
//
// where `reconfig` is exactly reconfigSigningBytes(change) — what the approvals sign. Decoding is
// strict: every length is bounded by what remains, and the decoded change re-encodes to the same
// bytes (so two encodings of one change cannot exist). Pure.
// Must never return a change it did not fully decode, nor accept trailing bytes.

import { CanonicalWriter, MAX_ADDRESS_BYTES, MAX_CHAIN_ID_BYTES, MAX_OP_ADDRESSES, reconfigSigningBytes, DOMAIN_TAGS } from '#libs/crypto/index.ts';
import { FedError } from '#libs/errors/index.ts';
import type { Approval, ReconfigOp, Reconfiguration } from './reconfig.ts';
import { MAX_OPS } from './reconfig.ts';

export const RECONFIG_TX_TAG = 'btcfed/v1/reconfig-tx';

/** The bytes every reconfiguration transaction begins with: field(tag). */
const PREFIX = new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').finish();

/** Approvals one transaction may carry: more than any validator set has members. */
const MAX_APPROVALS = 1024;
const MAX_SIGNATURE_BYTES = 64 * 1024;

export interface ReconfigTx {
  readonly change: Reconfiguration;
  readonly approvals: readonly Approval[];
}

export function encodeReconfigTx(tx: ReconfigTx): Uint8Array {
  const w = new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').bytes(reconfigSigningBytes(tx.change)).u32(tx.approvals.length, 'approvals.length');
  tx.approvals.forEach((a, i) => {
    w.bytes(new CanonicalWriter().u32(a.validator, `approvals[${i}].validator`).bytes(a.signature).finish());
  });
  return w.finish();
}

/** Does this transaction claim to be a reconfiguration (its first bytes are the tag)? Cheap. */
export function isReconfigTx(tx: Uint8Array): boolean {
  if (tx.length < PREFIX.length) return false;
  for (let i = 0; i < PREFIX.length; i++) if (tx[i] !== PREFIX[i]) return false;
  return true;
}

const malformed = (field: string, why: string): never => {
  throw new FedError('RECONFIG_MALFORMED', `${field}: ${why}`, { field });
};

/** Reads length-delimited fields, never past the end. */
class Reader {
  readonly #b: Uint8Array;
  #at = 0;
  constructor(b: Uint8Array) {
    this.#b = b;
  }
  get done(): boolean {
    return this.#at === this.#b.length;
  }
  field(what: string, max = Number.MAX_SAFE_INTEGER): Uint8Array {
    if (this.#b.length - this.#at < 4) malformed(what, 'truncated length');
    const len = new DataView(this.#b.buffer, this.#b.byteOffset + this.#at, 4).getUint32(0);
    this.#at += 4;
    if (len > this.#b.length - this.#at) malformed(what, `length ${len} runs past the end`);
    if (len > max) malformed(what, `${len} bytes, at most ${max}`);
    const out = this.#b.subarray(this.#at, this.#at + len);
    this.#at += len;
    return out;
  }
  str(what: string, max: number): string {
    const bytes = this.field(what, max);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return malformed(what, 'not UTF-8');
    }
  }
  uint(what: string, size: 1 | 4 | 8): number {
    const b = this.field(what, size);
    if (b.length !== size) malformed(what, `${b.length} bytes, expected ${size}`);
    let v = 0;
    for (const x of b) v = v * 256 + x;
    if (!Number.isSafeInteger(v)) malformed(what, 'above 2^53');
    return v;
  }
}

/** The change and approvals of a reconfiguration transaction, or RECONFIG_MALFORMED naming the field. */
export function decodeReconfigTx(tx: Uint8Array): ReconfigTx {
  if (!isReconfigTx(tx)) malformed('tag', `not a reconfiguration transaction (it does not begin with ${RECONFIG_TX_TAG})`);
  const r = new Reader(tx.subarray(PREFIX.length));
  const changeBytes = r.field('change');
  const change = decodeChange(changeBytes);
  const count = r.uint('approvals.length', 4);
  if (count > MAX_APPROVALS) malformed('approvals.length', `${count}, at most ${MAX_APPROVALS}`);
  const approvals: Approval[] = [];
  for (let i = 0; i < count; i++) {
    const a = new Reader(r.field(`approvals[${i}]`));
    const validator = a.uint(`approvals[${i}].validator`, 4);
    const signature = a.field(`approvals[${i}].signature`, MAX_SIGNATURE_BYTES).slice();
    if (!a.done) malformed(`approvals[${i}]`, 'trailing bytes');
    approvals.push({ validator, signature });
  }
  if (!r.done) malformed('tx', 'trailing bytes after the approvals');
  return { change, approvals };
}

/** A change from its canonical bytes (reconfigSigningBytes), or RECONFIG_MALFORMED naming the field. */
export function decodeReconfiguration(bytes: Uint8Array): Reconfiguration {
  return decodeChange(bytes);
}

function decodeChange(bytes: Uint8Array): Reconfiguration {
  const r = new Reader(bytes);
  const tag = r.str('change.tag', 64);
  if (tag !== DOMAIN_TAGS.reconfig) malformed('change.tag', `${JSON.stringify(tag)} is not ${DOMAIN_TAGS.reconfig}`);
  const chainId = r.str('change.chainId', MAX_CHAIN_ID_BYTES);
  const epoch = r.uint('change.epoch', 8);
  const count = r.uint('change.ops.length', 4);
  if (count > MAX_OPS) malformed('change.ops.length', `${count}, at most ${MAX_OPS}`);
  const ops: ReconfigOp[] = [];
  for (let i = 0; i < count; i++) {
    const at = `change.ops[${i}]`;
    const o = new Reader(r.field(at));
    const code = o.uint(`${at}.kind`, 1);
    if (code === 4) {
      ops.push({ kind: 'params', baseTimeoutMs: o.uint(`${at}.baseTimeoutMs`, 8), idleHeartbeatMs: o.uint(`${at}.idleHeartbeatMs`, 8) });
      if (!o.done) malformed(at, 'trailing bytes');
      continue;
    }
    const name = o.str(`${at}.name`, 128);
    if (code === 2) {
      ops.push({ kind: 'remove', name });
    } else if (code === 1 || code === 3) {
      const peerId = o.str(`${at}.peerId`, 128);
      const publicKey = o.field(`${at}.publicKey`, 4096).slice();
      const addresses: string[] = [];
      if (!o.done) {
        const n = o.uint(`${at}.addresses.length`, 4);
        if (n > MAX_OP_ADDRESSES) malformed(`${at}.addresses.length`, `${n}, at most ${MAX_OP_ADDRESSES}`);
        for (let j = 0; j < n; j++) addresses.push(o.str(`${at}.addresses[${j}]`, MAX_ADDRESS_BYTES));
      }
      ops.push({ kind: code === 1 ? 'add' : 'rotate', name, peerId, publicKey, ...(addresses.length > 0 ? { addresses } : {}) });
    } else {
      malformed(`${at}.kind`, `unknown operation code ${code}`);
    }
    if (!o.done) malformed(at, 'trailing bytes');
  }
  if (!r.done) malformed('change', 'trailing bytes after the operations');
  const change: Reconfiguration = { chainId, epoch, ops };
  // Canonical: exactly one encoding per change (rejects, e.g., an empty public key the writer refuses).
  let again: Uint8Array;
  try {
    again = reconfigSigningBytes(change);
  } catch (err) {
    return malformed('change', (err as Error).message);
  }
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) malformed('change', 'not the canonical encoding');
  return change;
}
