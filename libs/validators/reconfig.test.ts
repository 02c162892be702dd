// Reconfiguration rules (reconfig.ts) and the epoch history (epochs.ts) with real SLH-DSA keys
// and signatures: the next set of each operation, every malformed, stale, replayed or
// unauthorised change refused naming its field, and a history walked from genesis.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { createSlhDsa, reconfigSigningBytes, toHex, type KeyPair } from '#libs/crypto/index.ts';
import { ValidatorSet } from './set.ts';
import { EpochHistory } from './epochs.ts';
import { authorizeChange, nextValidatorSet, paramsOfChange, reconfigId, type Approval, type ReconfigRules, type Reconfiguration } from './reconfig.ts';

const slh = createSlhDsa({ backend: 'auto' });
const keys: KeyPair[] = Array.from({ length: 8 }, (_, i) => slh.generateKeyPair(new Uint8Array(slh.seedBytes).fill(i + 1)));
const rules: ReconfigRules = { chainId: 'reconfig-test', publicKeyBytes: slh.publicKeyBytes };
const verify = (pk: Uint8Array, msg: Uint8Array, sig: Uint8Array) => slh.verifySync(pk, msg, sig);
const genesis = ValidatorSet.fromConfig(keys.slice(0, 4).map((k, i) => ({ name: `m${i}`, peer_id: `peer-${i}`, public_key: toHex(k.publicKey) })));

/** Approvals of `change` by the validators at `by` (indices in the change's epoch), signed with `signers`' keys. */
function approve(change: Reconfiguration, by: number[], signers: KeyPair[] = by.map((i) => keys[i]!)): Approval[] {
  const bytes = reconfigSigningBytes(change);
  return by.map((validator, k) => ({ validator, signature: slh.signSync(signers[k]!.secretKey, bytes) }));
}

const refused = (code: string, pattern: RegExp) => (err: unknown) => isFedError(err, code) && pattern.test(err.message);
const add = (i: number, name = `m${i}`) => ({ kind: 'add' as const, name, peerId: `peer-${i}`, publicKey: keys[i]!.publicKey });

test('add, remove and rotate: the next epoch\'s set, members in order, added ones last', () => {
  const grown = nextValidatorSet(genesis, { chainId: rules.chainId, epoch: 0, ops: [add(4), add(5)] }, rules);
  assert.equal(grown.epoch, 1);
  assert.deepEqual(grown.members.map((v) => v.name), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  assert.equal(grown.quorum, 4, 'N = 6: quorum 4');
  const shrunk = nextValidatorSet(grown, { chainId: rules.chainId, epoch: 1, ops: [{ kind: 'remove', name: 'm2' }] }, rules);
  assert.deepEqual(shrunk.members.map((v) => v.name), ['m0', 'm1', 'm3', 'm4', 'm5']);
  assert.equal(shrunk.indexOfName('m3'), 2, 'indices close up behind a removed member');
  const rotated = nextValidatorSet(genesis, { chainId: rules.chainId, epoch: 0, ops: [{ kind: 'rotate', name: 'm1', peerId: 'peer-1b', publicKey: keys[6]!.publicKey }] }, rules);
  assert.equal(rotated.byIndex(1).publicKey, toHex(keys[6]!.publicKey), 'a rotated member keeps its index with its new key');
  assert.equal(rotated.indexOfKey(keys[1]!.publicKey), undefined, 'the old key is no validator\'s');
  assert.equal(genesis.byIndex(1).publicKey, toHex(keys[1]!.publicKey), 'the old set is unchanged');
});

test('an added or rotated member\'s addresses go into the set, are checked, and stay across later changes', () => {
  const PEER = '12D3KooWCmxv6aCES4u9tkeq3EtCoiXw2Ud9itJ9g42fH6YJ7Vjv';
  const at = ['/ip4/10.0.0.4/tcp/4001', `/dns4/m4.example.org/tcp/4001/p2p/${PEER}`];
  const grown = nextValidatorSet(genesis, { chainId: rules.chainId, epoch: 0, ops: [{ ...add(4), peerId: PEER, addresses: at }] }, rules);
  assert.deepEqual(grown.byIndex(4).addresses, at);
  assert.deepEqual(grown.byIndex(0).addresses, [], 'a genesis member: none (peers.yaml lists it)');
  const later = nextValidatorSet(grown, { chainId: rules.chainId, epoch: 1, ops: [{ kind: 'remove', name: 'm1' }] }, rules);
  assert.deepEqual(later.byIndex(later.indexOfName('m4')!).addresses, at, 'kept by the next change');
  const bad = (addresses: string[], pattern: RegExp) => assert.throws(
    () => nextValidatorSet(genesis, { chainId: rules.chainId, epoch: 0, ops: [add(5), { ...add(4), peerId: PEER, addresses }] }, rules),
    refused('RECONFIG_INVALID', pattern));
  bad(['/ip4/0.0.0.0/tcp/4001'], /^ops\[1\]\.addresses\[0\]: "\/ip4\/0\.0\.0\.0\/tcp\/4001" is a wildcard/);
  bad([at[0]!, '/ip4/10.0.0.4/tcp/4001/p2p/12D3KooWGzh7TnsBvG6mjTqCdLGMwHXnpk9PkBqhmgjWFQMGH7wY'], /^ops\[1\]\.addresses\[1\]: .* names peer 12D3KooWGzh7/);
  bad(['not an address'], /^ops\[1\]\.addresses\[0\]: "not an address" /);
  bad([at[0]!, at[0]!], /^ops\[1\]\.addresses: an address is listed twice/);
});

test('bad changes are refused naming the field, and nothing changes', () => {
  const change = (ops: Reconfiguration['ops'], over: Partial<Reconfiguration> = {}): Reconfiguration => ({ chainId: rules.chainId, epoch: 0, ops, ...over });
  const cases: Array<[string, Reconfiguration, RegExp]> = [
    ['another chain', change([add(4)], { chainId: 'other' }), /^chainId: /],
    ['stale epoch', change([add(4)], { epoch: -1 }), /^epoch: stale/],
    ['future epoch', change([add(4)], { epoch: 1 }), /^epoch: the change ends epoch 1, not the current 0/],
    ['no operation', change([]), /^ops: no operation/],
    ['too many operations', change(Array.from({ length: 17 }, (_, i) => add(4, `x${i}`))), /^ops: 17 operations, at most 16/],
    ['a key of another parameter set', change([{ ...add(4), publicKey: new Uint8Array(48) }]), /^ops\[0\]\.publicKey: 48 bytes, .* 32-byte keys/],
    ['a bad name', change([add(4, 'M 4')]), /^ops\[0\]\.name: must be/],
    ['a name already in the set', change([add(4, 'm1')]), /^ops\[0\]\.name: m1 is already validator 1/],
    ['a duplicate key', change([{ ...add(4), publicKey: keys[2]!.publicKey }]), /same public_key as validators\[2\] \(m2\)/],
    ['a duplicate peer id', change([{ ...add(4), peerId: 'peer-0' }]), /same peer_id as validators\[0\] \(m0\)/],
    ['removing a stranger', change([{ kind: 'remove', name: 'm9' }]), /^ops\[0\]\.name: m9 is not a validator of epoch 0/],
    ['below four validators', change([{ kind: 'remove', name: 'm3' }]), /^ops: the change leaves 3 validators, at least 4 required/],
    ['two operations on one member', change([{ kind: 'remove', name: 'm3' }, add(3)]), /^ops\[1\]\.name: m3 is changed twice/],
    ['a rotation to the same identity', change([{ kind: 'rotate', name: 'm1', peerId: 'peer-1', publicKey: keys[1]!.publicKey }]), /^ops\[0\]: m1's new identity is its old one/],
    ['a rotation onto another member\'s key', change([{ kind: 'rotate', name: 'm1', peerId: 'peer-1', publicKey: keys[3]!.publicKey }]), /same public_key/],
  ];
  for (const [what, c, why] of cases) {
    assert.throws(() => nextValidatorSet(genesis, c, rules), refused('RECONFIG_INVALID', why), what);
  }
  assert.throws(() => nextValidatorSet(genesis, change([add(4)]), { ...rules, checkPeerId: () => 'not a libp2p peer id' }), refused('RECONFIG_INVALID', /^ops\[0\]\.peerId: not a libp2p peer id/));
  assert.equal(nextValidatorSet(genesis, change([{ kind: 'remove', name: 'm3' }]), { ...rules, minValidators: 3 }).n, 3, 'the minimum is the operator\'s');
  assert.equal(genesis.n, 4);
});

test('a change is authorised by a quorum of its epoch\'s validators, each signature checked, cheap checks first', () => {
  const change: Reconfiguration = { chainId: rules.chainId, epoch: 0, ops: [add(4)] };
  authorizeChange(genesis, change, approve(change, [0, 1, 3]), verify);
  let verified = 0;
  const counting = (pk: Uint8Array, m: Uint8Array, s: Uint8Array) => { verified++; return verify(pk, m, s); };
  const cases: Array<[string, Approval[], RegExp]> = [
    ['fewer than a quorum', approve(change, [0, 1]), /2 approvals, a quorum of epoch 0 is 3/],
    ['one validator twice', [...approve(change, [0, 1]), ...approve(change, [1])], /approvals\[2\]: validator 1 approves twice/],
    ['an index outside the set', [...approve(change, [0, 1, 2]), { validator: 7, signature: new Uint8Array(10) }], /approvals\[3\]: no validator 7 in epoch 0/],
    ['more approvals than validators', [...approve(change, [0, 1, 2, 3]), ...approve(change, [0])], /5 approvals for 4 validators/],
  ];
  for (const [what, approvals, why] of cases) assert.throws(() => authorizeChange(genesis, change, approvals, counting), refused('RECONFIG_UNAUTHORISED', why), what);
  assert.equal(verified, 0, 'refused before any signature was verified');
  // A signature by a key that is not the validator's (a rotated-out key, a stranger's) does not count.
  assert.throws(() => authorizeChange(genesis, change, approve(change, [0, 1, 2], [keys[0]!, keys[1]!, keys[7]!]), verify),
    refused('RECONFIG_UNAUTHORISED', /approvals\[2\]: validator 2 \(m2\)'s signature does not verify/));
  // Approvals of another change — or of this change for another epoch (a replay) — do not count.
  const other: Reconfiguration = { ...change, ops: [add(5)] };
  assert.throws(() => authorizeChange(genesis, change, approve(other, [0, 1, 2]), verify), refused('RECONFIG_UNAUTHORISED', /does not verify/));
  const later = ValidatorSet.fromConfig(genesis.members.map((v) => ({ name: v.name, peer_id: v.peerId, public_key: v.publicKey })), { epoch: 1 });
  assert.throws(() => authorizeChange(later, change, approve(change, [0, 1, 2]), verify), refused('RECONFIG_UNAUTHORISED', /counted in epoch 0's set, this set is epoch 1/));
  assert.throws(() => authorizeChange(later, { ...change, epoch: 1 }, approve(change, [0, 1, 2]), verify), refused('RECONFIG_UNAUTHORISED', /does not verify/),
    'epoch 0\'s approvals replayed for the same operations in epoch 1');
});

test('the signed bytes are domain-separated, bind every field, and name the change', () => {
  const change: Reconfiguration = { chainId: rules.chainId, epoch: 3, ops: [add(4), { kind: 'remove', name: 'm1' }] };
  const bytes = reconfigSigningBytes(change);
  assert.match(Buffer.from(bytes).toString('latin1'), /btcfed\/v1\/reconfig/);
  const variants: Reconfiguration[] = [
    { ...change, epoch: 4 }, { ...change, chainId: 'other' }, { ...change, ops: [change.ops[1]!, change.ops[0]!] },
    { ...change, ops: [add(4, 'm4x'), change.ops[1]!] }, { ...change, ops: [{ ...add(4), peerId: 'peer-x' }, change.ops[1]!] },
    { ...change, ops: [{ ...add(4), kind: 'rotate' }, change.ops[1]!] }, { ...change, ops: [add(4)] },
  ];
  const ids = new Set([reconfigId(change), ...variants.map(reconfigId)]);
  assert.equal(ids.size, variants.length + 1, 'every field changes the signed bytes');
  assert.equal(reconfigId(change), reconfigId({ ...change, ops: [...change.ops] }), 'the same change has one name');
  assert.throws(() => reconfigSigningBytes({ ...change, ops: [{ kind: 'grow', name: 'x' } as never] }), (e: unknown) => isFedError(e, 'CRYPTO_BAD_RECONFIG'));
});

test('the epoch history: sets derived from genesis and the committed changes, heights mapped to epochs, refusals change nothing', () => {
  const history = EpochHistory.fromGenesis(genesis, rules, verify);
  const c1: Reconfiguration = { chainId: rules.chainId, epoch: 0, ops: [add(4)] };
  const e1 = history.apply({ change: c1, approvals: approve(c1, [0, 1, 2]), height: 10 });
  assert.equal(e1.n, 5);
  // Epoch 1 is authorised by epoch 1's validators: m4 signs now, a quorum of five is four.
  const c2: Reconfiguration = { chainId: rules.chainId, epoch: 1, ops: [{ kind: 'rotate', name: 'm1', peerId: 'peer-1b', publicKey: keys[6]!.publicKey }] };
  assert.throws(() => history.apply({ change: c2, approvals: approve(c2, [0, 1, 2]), height: 20 }), refused('RECONFIG_UNAUTHORISED', /3 approvals, a quorum of epoch 1 is 4/));
  assert.throws(() => history.apply({ change: c1, approvals: approve(c1, [0, 1, 2]), height: 20 }), refused('RECONFIG_INVALID', /^epoch: stale/), 'a committed change replayed');
  assert.throws(() => history.apply({ change: c2, approvals: approve(c2, [0, 1, 2, 4]), height: 5 }), refused('RECONFIG_INVALID', /^height: /));
  assert.equal(history.current.epoch, 1, 'refusals changed nothing');
  const e2 = history.apply({ change: c2, approvals: approve(c2, [0, 1, 2, 4]), height: 20 });
  assert.equal(e2.epoch, 2);
  // The rotated key signs for epoch 2; the old one no longer counts.
  const c3: Reconfiguration = { chainId: rules.chainId, epoch: 2, ops: [{ kind: 'remove', name: 'm2' }] };
  assert.throws(() => history.apply({ change: c3, approvals: approve(c3, [0, 1, 3, 4]), height: 30 }), refused('RECONFIG_UNAUTHORISED', /validator 1 \(m1\)'s signature/));
  history.apply({ change: c3, approvals: approve(c3, [0, 1, 3, 4], [keys[0]!, keys[6]!, keys[3]!, keys[4]!]), height: 30 });
  assert.deepEqual([0, 10, 11, 20, 21, 30, 31, 10_000].map((h) => history.epochAt(h)), [0, 0, 1, 1, 2, 2, 3, 3]);
  assert.deepEqual([0, 1, 2, 3, 4].map((e) => history.setOf(e)?.n), [4, 5, 5, 4, undefined]);
  assert.deepEqual([1, 2, 3].map((e) => history.firstHeight(e)), [11, 21, 31]);
  // Anyone replaying genesis and the changes derives the same sets.
  const replayed = EpochHistory.replay(genesis, [
    { change: c1, approvals: approve(c1, [0, 1, 2]), height: 10 },
    { change: c2, approvals: approve(c2, [0, 1, 2, 4]), height: 20 },
    { change: c3, approvals: approve(c3, [0, 1, 3, 4], [keys[0]!, keys[6]!, keys[3]!, keys[4]!]), height: 30 },
  ], rules, verify);
  assert.ok(replayed.current.equals(history.current));
  assert.throws(() => EpochHistory.fromGenesis(e1, rules, verify), refused('RECONFIG_INVALID', /genesis must be epoch 0/));
});

test('a params operation: the set is unchanged, the parameters are the next epoch\'s and every later one\'s until another sets them; out-of-range values and two in one change are refused naming the field', () => {
  const params = (baseTimeoutMs: number, idleHeartbeatMs: number) => ({ kind: 'params' as const, baseTimeoutMs, idleHeartbeatMs });
  const change = (epoch: number, ops: Reconfiguration['ops']): Reconfiguration => ({ chainId: rules.chainId, epoch, ops });
  const same = nextValidatorSet(genesis, change(0, [params(2500, 5000)]), rules);
  assert.equal(same.epoch, 1);
  assert.deepEqual(same.members.map((v) => [v.name, v.publicKey]), genesis.members.map((v) => [v.name, v.publicKey]), 'a parameter change alone keeps the set');
  assert.deepEqual(paramsOfChange(change(0, [add(4), params(2500, 0)])), { baseTimeoutMs: 2500, idleHeartbeatMs: 0 });
  assert.equal(paramsOfChange(change(0, [add(4)])), undefined);
  // With a member's change in one reconfiguration: both apply.
  assert.equal(nextValidatorSet(genesis, change(0, [add(4), params(2500, 0)]), rules).n, 5);

  const bad = (ops: Reconfiguration['ops'], pattern: RegExp) => assert.throws(() => nextValidatorSet(genesis, change(0, ops), rules), refused('RECONFIG_INVALID', pattern));
  bad([params(50, 0)], /^ops\[0\]\.baseTimeoutMs: 50: must be 100ms to 60s/);
  bad([params(60_001, 0)], /^ops\[0\]\.baseTimeoutMs: 60001: must be 100ms to 60s/);
  bad([params(1000, 500)], /^ops\[0\]\.idleHeartbeatMs: 500: must be 0 \(a block every view\) or 1s to 30s/);
  bad([params(1000, 31_000)], /^ops\[0\]\.idleHeartbeatMs: 31000/);
  bad([params(1000, 0), params(2000, 0)], /^ops\[1\]\.kind: the parameters are set twice/);

  // Signed: another value is another change, with another id.
  assert.notEqual(reconfigId(change(0, [params(2500, 5000)])), reconfigId(change(0, [params(2500, 5001)])));

  // The history: epoch 0 has none committed (conf.yaml's apply); epoch 1 the change's; epoch 2, after a change without params, still epoch 1's.
  const h = EpochHistory.fromGenesis(genesis, rules, verify);
  const c1 = change(0, [params(2500, 5000)]);
  h.apply({ change: c1, approvals: approve(c1, [0, 1, 2]), height: 10 });
  const c2 = change(1, [add(4)]);
  h.apply({ change: c2, approvals: approve(c2, [0, 1, 2]), height: 20 });
  const c3 = change(2, [params(1500, 0)]);
  h.apply({ change: c3, approvals: approve(c3, [0, 1, 2, 3]), height: 30 });
  assert.equal(h.paramsOf(0), undefined);
  assert.deepEqual(h.paramsOf(1), { baseTimeoutMs: 2500, idleHeartbeatMs: 5000 });
  assert.deepEqual(h.paramsOf(2), { baseTimeoutMs: 2500, idleHeartbeatMs: 5000 }, 'carried across a change that sets none');
  assert.deepEqual(h.paramsOf(3), { baseTimeoutMs: 1500, idleHeartbeatMs: 0 });
});
