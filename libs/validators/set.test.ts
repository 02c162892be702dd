// The validator set: built from config entries, the quorum arithmetic and leader rule of
// libs/hotstuff (checked against the engine's default), lookups, and the one "who am I" resolver.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { ValidatorSet, type ValidatorEntry } from './index.ts';

const key = (i: number) => (i + 1).toString(16).padStart(2, '0').repeat(32);
const entries = (n: number): ValidatorEntry[] => Array.from({ length: n }, (_, i) => ({ name: `m${i}`, peer_id: `12D3KooPeer${i}`, public_key: key(i) }));

const refused = (code: string, pattern: RegExp) => (err: unknown) => isFedError(err, code) && pattern.test(err.message);

test('n, f and quorum over the whole set, for N = 1..22', () => {
  for (let n = 1; n <= 22; n++) {
    const s = ValidatorSet.fromConfig(entries(n));
    assert.equal(s.n, n);
    assert.equal(s.f, Math.floor((n - 1) / 3), `f for N=${n}`);
    assert.equal(s.quorum, Math.ceil((n + s.f + 1) / 2), `quorum for N=${n}`);
    assert.equal(s.epoch, 0, 'genesis is epoch 0');
  }
  assert.deepEqual([4, 5, 6, 7].map((n) => ValidatorSet.fromConfig(entries(n)).quorum), [3, 4, 4, 5]);
});

test('mayLead: view mod N always; one of the f after it outside probe rotations; nobody else', () => {
  for (const n of [1, 4, 7]) {
    const s = ValidatorSet.fromConfig(entries(n));
    const f = Math.floor((n - 1) / 3);
    for (let v = 0; v < 200; v++) {
      const probe = Math.floor(v / n) % 8 === 0;
      for (let who = 0; who < n; who++) {
        const k = (who - (v % n) + n) % n;
        assert.equal(s.mayLead(v, who), k === 0 || (!probe && k <= f), `N=${n} view ${v} validator ${who}`);
      }
    }
    assert.equal(s.mayLead(3, n), false, 'an index outside the set');
  }
  assert.equal(ValidatorSet.fromConfig(entries(4)).mayLead(2 ** 40 + 1, (2 ** 40 + 1) % 4), true, 'large views');
});

test('byIndex, has and the lookups by name, peer id and key (hex or bytes)', () => {
  const s = ValidatorSet.fromConfig(entries(4));
  assert.deepEqual(s.byIndex(2), { index: 2, name: 'm2', peerId: '12D3KooPeer2', publicKey: key(2), addresses: [] });
  for (const bad of [-1, 4, 1.5, Number.NaN]) {
    assert.equal(s.has(bad), false, `has(${bad})`);
    assert.throws(() => s.byIndex(bad), refused('VALIDATOR_UNKNOWN', /no validator with index/));
  }
  assert.equal(s.has(0), true);
  assert.equal(s.indexOfName('m3'), 3);
  assert.equal(s.indexOfName('m9'), undefined);
  assert.equal(s.indexOfPeer('12D3KooPeer1'), 1);
  assert.equal(s.indexOfPeer('12D3KooPeer9'), undefined);
  assert.equal(s.hasPeer('12D3KooPeer0'), true);
  assert.equal(s.hasPeer('nobody'), false);
  assert.equal(s.byPeer('12D3KooPeer3')?.name, 'm3');
  assert.equal(s.byPeer('nobody'), undefined);
  assert.equal(s.indexOfKey(key(3)), 3);
  assert.equal(s.indexOfKey(Uint8Array.from(Buffer.from(key(1), 'hex'))), 1);
  assert.equal(s.indexOfKey(key(7)), undefined);
  assert.equal(s.hasKey(key(0)), true);
  assert.equal(s.hasKey(new Uint8Array(32)), false);
  assert.deepEqual(s.publicKeys().map((k) => Buffer.from(k).toString('hex')), [0, 1, 2, 3].map(key));
});

test('immutable: members, entries and the set itself cannot be changed', () => {
  const list = entries(4);
  const s = ValidatorSet.fromConfig(list);
  list[0]!.name = 'changed';
  assert.equal(s.byIndex(0).name, 'm0', 'built from a copy of the entries');
  assert.throws(() => { (s.members as unknown as object[]).push({ index: 9 }); }, TypeError);
  assert.throws(() => { (s.byIndex(1) as { name: string }).name = 'x'; }, TypeError);
  assert.throws(() => { (s as { n: number }).n = 7; }, TypeError);
  s.publicKeys()[0]!.fill(0);
  assert.equal(s.byIndex(0).publicKey, key(0), 'public keys are handed out as copies');
});

test('bad sets are refused, naming the entry: empty, duplicate name, peer id or key, missing or non-hex fields, bad epoch', () => {
  assert.throws(() => ValidatorSet.fromConfig([]), refused('VALIDATORS_INVALID', /empty/));
  const dupPeer = entries(4);
  dupPeer[3]!.peer_id = dupPeer[1]!.peer_id;
  assert.throws(() => ValidatorSet.fromConfig(dupPeer), refused('VALIDATORS_INVALID', /validators\[3\] \(m3\) has the same peer_id as validators\[1\] \(m1\)/));
  const dupKey = entries(4);
  dupKey[2]!.public_key = dupKey[0]!.public_key;
  assert.throws(() => ValidatorSet.fromConfig(dupKey), refused('VALIDATORS_INVALID', /validators\[2\] \(m2\) has the same public_key as validators\[0\] \(m0\)/));
  const dupName = entries(3);
  dupName[1]!.name = 'm0';
  assert.throws(() => ValidatorSet.fromConfig(dupName), refused('VALIDATORS_INVALID', /same name/));
  const noPeer = entries(2);
  noPeer[1]!.peer_id = '';
  assert.throws(() => ValidatorSet.fromConfig(noPeer), refused('VALIDATORS_INVALID', /validators\[1\] has no peer_id/));
  const upper = entries(2);
  upper[0]!.public_key = upper[0]!.public_key.toUpperCase().replace(/0/g, 'A');
  assert.throws(() => ValidatorSet.fromConfig(upper), refused('VALIDATORS_INVALID', /not lower-case hex/));
  assert.throws(() => ValidatorSet.fromConfig(entries(4), { epoch: -1 }), refused('VALIDATORS_INVALID', /epoch/));
  assert.equal(ValidatorSet.fromConfig(entries(4), { epoch: 3 }).epoch, 3);
});

test('self: one resolver by name, peer id or key, each alone or together', () => {
  const s = ValidatorSet.fromConfig(entries(4));
  assert.equal(s.self, undefined, 'a set knows no self until asked');
  assert.equal(s.selfIndex, undefined);
  const claims = [{ name: 'm2' }, { peerId: '12D3KooPeer2' }, { publicKey: key(2) }, { publicKey: Uint8Array.from(Buffer.from(key(2), 'hex')) },
    { name: 'm2', peerId: '12D3KooPeer2', publicKey: key(2) }];
  for (const claim of claims) {
    const mine = s.withSelf(claim);
    assert.equal(mine.selfIndex, 2, JSON.stringify(claim));
    assert.equal(mine.self?.name, 'm2');
    assert.equal(mine.n, 4);
    assert.equal(mine.indexOfPeer('12D3KooPeer3'), 3, 'lookups carry over');
    assert.equal(s.selfIndex, undefined, 'the original set is unchanged');
  }
  assert.equal(s.resolve({ name: 'm1' })?.index, 1);
  assert.equal(s.resolve({ name: 'observer', peerId: 'elsewhere' }), undefined, 'not a validator: no self, no error');
  assert.equal(s.withSelf({ peerId: 'elsewhere' }, { optional: true }).self, undefined);
});

test('an unknown self is refused, naming what did not match', () => {
  const s = ValidatorSet.fromConfig(entries(4));
  assert.throws(() => s.withSelf({ name: 'm9' }), refused('VALIDATOR_NOT_IN_SET', /name m9: not a validator of epoch 0 \(validators: m0, m1, m2, m3\)/));
  assert.throws(() => s.withSelf({ publicKey: key(9) }), refused('VALIDATOR_NOT_IN_SET', new RegExp(`public key ${key(9).slice(0, 16)}`)));
  assert.throws(() => s.withSelf({}), refused('VALIDATOR_IDENTITY_CONFLICT', /no identity given/));
});

test('identities that name different validators, or one in the set and one not, are refused naming each', () => {
  const s = ValidatorSet.fromConfig(entries(4));
  assert.throws(() => s.resolve({ name: 'm1', peerId: '12D3KooPeer2' }),
    refused('VALIDATOR_IDENTITY_CONFLICT', /name m1 is validators\[1\] \(m1\); peer id 12D3KooPeer2 is validators\[2\] \(m2\)/));
  assert.throws(() => s.withSelf({ name: 'm1', publicKey: key(9) }, { optional: true }),
    refused('VALIDATOR_IDENTITY_CONFLICT', /name m1 is validators\[1\] \(m1\); public key .* is not in the set/));
  assert.throws(() => s.resolve({ name: 'm0', peerId: '12D3KooPeer0', publicKey: key(3) }), refused('VALIDATOR_IDENTITY_CONFLICT', /public key .* is validators\[3\] \(m3\)/));
});

test('equals: same epoch, members in order and self', () => {
  const a = ValidatorSet.fromConfig(entries(4));
  assert.equal(a.equals(ValidatorSet.fromConfig(entries(4))), true);
  assert.equal(a.equals(ValidatorSet.fromConfig(entries(4), { epoch: 1 })), false);
  assert.equal(a.equals(ValidatorSet.fromConfig(entries(5))), false);
  assert.equal(a.equals(ValidatorSet.fromConfig([...entries(4)].reverse())), false);
  assert.equal(a.equals(a.withSelf({ name: 'm0' })), false);
  assert.equal(a.withSelf({ name: 'm0' }).equals(ValidatorSet.fromConfig(entries(4)).withSelf({ peerId: '12D3KooPeer0' })), true);
  const rekeyed = entries(4);
  rekeyed[1]!.public_key = key(8);
  assert.equal(a.equals(ValidatorSet.fromConfig(rekeyed)), false);
});
