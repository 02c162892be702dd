// Target reconfig-tx: a reconfiguration transaction — the change (add a member from its card with
// its addresses, remove one, rotate one, set the consensus parameters) and its approvals — as block validity reads it from a
// block a Byzantine leader proposed, or SubmitReconfiguration from an operator's file
// (libs/blocks/validity.ts reconfigError): decodeReconfigTx, then nextValidatorSet against the
// epoch's set, then authorizeChange. Refusal: FedError RECONFIG_MALFORMED, RECONFIG_INVALID or
// RECONFIG_UNAUTHORISED. Properties: a decoded change re-encodes to the input's bytes (one
// encoding per change); a set nextValidatorSet returns has no name, peer id or key twice and every
// member's addresses pass memberAddressProblem; parameters pass only once and within their bounds; no approval signature is checked before the
// approvals' indices and count are (cheap checks first).

import fc from 'fast-check';
import { isFedError } from '#libs/errors/index.ts';
import { baseTimeoutProblem, idleHeartbeatProblem, memberAddressProblem } from '#libs/config/index.ts';
import {
  ValidatorSet, authorizeChange, decodeReconfigTx, encodeReconfigTx, nextValidatorSet, RECONFIG_TX_TAG, type ReconfigOp, type ReconfigTx,
} from '#libs/validators/index.ts';
import { CanonicalWriter } from '#libs/crypto/index.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { CHAIN, PEERS, filled } from './wire-values.ts';

const KEY_BYTES = 32;
const key = (i: number) => filled(KEY_BYTES, 7000 + i);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
export const SET = ValidatorSet.fromConfig([0, 1, 2, 3].map((i) => ({ name: `m${i}`, peer_id: PEERS[i]!, public_key: hex(key(i)) })));
export const RULES = { chainId: CHAIN, publicKeyBytes: KEY_BYTES };

/** Signatures "verify" when their first byte is 1; checks of indices and count must come before any. */
let indicesChecked = false;
function verify(_pk: Uint8Array, _msg: Uint8Array, sig: Uint8Array): boolean {
  if (!indicesChecked) violated('a signature was checked before the approvals\' indices and count');
  return sig[0] === 1;
}

const REFUSALS = new Set(['RECONFIG_MALFORMED', 'RECONFIG_INVALID', 'RECONFIG_UNAUTHORISED']);

function run(input: Uint8Array): void {
  const tx = decodeReconfigTx(input);
  const again = encodeReconfigTx(tx);
  if (again.length !== input.length || again.some((b, i) => b !== input[i])) violated('a decoded transaction re-encodes to other bytes');
  const next = nextValidatorSet(SET, tx.change, RULES);
  for (const field of ['name', 'peerId', 'publicKey'] as const) {
    if (new Set(next.members.map((v) => v[field])).size !== next.n) violated(`the next set holds a ${field} twice`);
  }
  for (const v of next.members) {
    for (const a of v.addresses) if (memberAddressProblem(a, v.peerId)) violated(`${v.name}'s address ${a} passed: ${memberAddressProblem(a, v.peerId)}`);
  }
  const params = tx.change.ops.filter((o) => o.kind === 'params');
  if (params.length > 1) violated('a change setting the parameters twice passed');
  for (const p of params) {
    if (baseTimeoutProblem(p.baseTimeoutMs) || idleHeartbeatProblem(p.idleHeartbeatMs)) violated(`parameters ${p.baseTimeoutMs} ms / ${p.idleHeartbeatMs} ms passed`);
  }
  // authorizeChange checks indices, duplicates and the count before any signature: mark when the
  // approvals would pass those (the same rules, restated) so `verify` can tell if it came first.
  const distinct = new Set(tx.approvals.map((a) => a.validator));
  indicesChecked = tx.change.epoch === SET.epoch && tx.approvals.length <= SET.n && distinct.size === tx.approvals.length
    && tx.approvals.every((a) => SET.has(a.validator)) && distinct.size >= SET.quorum;
  try {
    authorizeChange(SET, tx.change, tx.approvals, verify);
  } finally {
    indicesChecked = false;
  }
}

const names = fc.oneof(fc.constantFrom('m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm9', '', 'M1', 'a'.repeat(33)), fc.string({ maxLength: 12 }));
const peerIds = fc.oneof(fc.constantFrom(...PEERS), fc.string({ maxLength: 60 }));
const keys = fc.oneof(fc.nat({ max: 9 }).map(key), fc.uint8Array({ maxLength: 48 }));
const address = fc.oneof(
  fc.constantFrom('/ip4/10.0.0.4/tcp/4001', '/ip6/::1/tcp/4001', '/dns4/m4.example.org/tcp/4001', '/ip4/0.0.0.0/tcp/4001', '/ip6/::/tcp/1',
    '/ip4/10.0.0.4/udp/4001', '/ip4/300.1.1.1/tcp/1', 'not an address', '', `/ip4/10.0.0.4/tcp/4001/p2p/${PEERS[4]}`, `/ip4/10.0.0.4/tcp/4001/p2p/${PEERS[5]}`),
  fc.string({ maxLength: 40 }), fc.constant('/dns4/' + 'x'.repeat(260) + '/tcp/1'),
);
const op: fc.Arbitrary<ReconfigOp> = fc.oneof(
  fc.record({ kind: fc.constantFrom('add' as const, 'rotate' as const), name: names, peerId: peerIds, publicKey: keys, addresses: fc.array(address, { maxLength: 10 }) }),
  fc.record({ kind: fc.constant('remove' as const), name: names }),
  fc.record({ kind: fc.constant('params' as const), baseTimeoutMs: fc.oneof(fc.constantFrom(0, 99, 100, 1000, 60_000, 60_001), fc.nat()),
    idleHeartbeatMs: fc.oneof(fc.constantFrom(0, 999, 1000, 30_000, 30_001), fc.nat()) }),
);
const txs: fc.Arbitrary<ReconfigTx> = fc.record({
  change: fc.record({ chainId: fc.constantFrom(CHAIN, 'other', ''), epoch: fc.oneof(fc.constantFrom(0, 1), fc.nat()), ops: fc.array(op, { maxLength: 18 }) }),
  approvals: fc.array(fc.record({ validator: fc.oneof(fc.nat({ max: 5 }), fc.nat()), signature: fc.oneof(fc.constant(Uint8Array.of(1)), fc.uint8Array({ maxLength: 8 })) }), { maxLength: 6 }),
});

/** The transaction's bytes; where the writer refuses a value (it is not encodable), the tag and raw bytes. */
function bytesOf(tx: ReconfigTx, raw: Uint8Array): Uint8Array {
  try {
    return encodeReconfigTx(tx);
  } catch {
    return Uint8Array.from([...new CanonicalWriter().str(RECONFIG_TX_TAG, 'tag').finish(), ...raw]);
  }
}

/**
 * Valid changes (what an honest proposer carries; they must round-trip) with approvals that are a
 * quorum or not: too few, repeated, out of the set, with signatures that fail.
 */
const approvals = fc.oneof(
  fc.constant([0, 1, 3].map((validator) => ({ validator, signature: Uint8Array.of(1) }))),
  fc.array(fc.record({ validator: fc.nat({ max: 5 }), signature: fc.constantFrom(Uint8Array.of(1), Uint8Array.of(0)) }), { maxLength: 6 }),
);
const valid: fc.Arbitrary<ReconfigTx> = fc.record({
  add: fc.boolean(), rotate: fc.boolean(), remove: fc.boolean(), params: fc.option(fc.tuple(fc.integer({ min: 100, max: 60_000 }), fc.constantFrom(0, 1000, 10_000, 30_000)), { nil: undefined }), addresses: fc.subarray(['/ip4/10.0.0.4/tcp/4001', '/dns4/m4.example.org/tcp/4001', `/ip4/10.0.0.5/tcp/1/p2p/${PEERS[4]}`]),
  approvals,
}).map(({ add, rotate, remove, params, addresses, approvals }) => {
  const ops: ReconfigOp[] = [];
  if (add || (!rotate && !remove)) ops.push({ kind: 'add', name: 'm4', peerId: PEERS[4]!, publicKey: key(4), ...(addresses.length > 0 ? { addresses } : {}) });
  if (rotate) ops.push({ kind: 'rotate', name: 'm1', peerId: PEERS[1]!, publicKey: key(8) });
  if (remove && add) ops.push({ kind: 'remove', name: 'm2' });
  if (params) ops.push({ kind: 'params', baseTimeoutMs: params[0], idleHeartbeatMs: params[1] });
  return { change: { chainId: CHAIN, epoch: 0, ops }, approvals };
});

export const reconfigTx: FuzzTarget<ReconfigTx> = {
  name: 'reconfig-tx',
  describe: 'a reconfiguration transaction in a block a Byzantine leader proposed, or submitted by an operator: decoded, checked against the epoch\'s set, its approvals counted',
  sources: ['libs/validators/reconfig-tx.ts', 'libs/validators/reconfig.ts', 'libs/validators/set.ts', 'libs/crypto/canonical.ts'],
  generate: fc.oneof(
    fc.tuple(txs, fc.uint8Array({ maxLength: 200 })).map(([tx, raw]) => bytesOf(tx, raw)),
    valid.map(encodeReconfigTx),
    // A valid change with its parameters set a second time (each value alone in bounds).
    fc.tuple(valid, fc.integer({ min: 100, max: 60_000 }), fc.constantFrom(0, 1000, 30_000))
      .map(([tx, baseTimeoutMs, idleHeartbeatMs]) => encodeReconfigTx({ ...tx, change: { ...tx.change, ops: [...tx.change.ops, { kind: 'params', baseTimeoutMs, idleHeartbeatMs }] } })),
  ),
  run,
  refusal: (err) => isFedError(err) && REFUSALS.has(err.code),
  roundTrip: { values: valid, encode: encodeReconfigTx, decode: decodeReconfigTx },
};
