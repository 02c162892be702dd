// Member cards and the genesis: what makes them valid, the validator order and the digest.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { parse, stringify } from 'yaml';
import { isFedError } from '#libs/errors/index.ts';
import {
  assembleGenesis, compareNames, generateIdentity, genesisDigest, genesisValidators, parseCardText, parseGenesisText, type MemberCard,
} from './index.ts';

async function card(name: string, host = '10.0.0.1', paramSet: MemberCard['slh_dsa']['param_set'] = 'slh-dsa-sha2-128f'): Promise<MemberCard> {
  const id = await generateIdentity();
  return {
    version: 1, name, slh_dsa: { param_set: paramSet, public_key: randomBytes(32).toString('hex') },
    libp2p: { peer_id: id.peerId, public_key: id.publicKey, addresses: [`/ip4/${host}/tcp/7105`] },
  };
}
const from = (cards: MemberCard[]) => cards.map((c) => ({ card: c, from: `${c.name}.yaml` }));

test('validator order: by name, numbers inside names as numbers', () => {
  const names = ['m10', 'm2', 'beta', 'm1', 'alpha', 'm0', 'm02', 'zeta-3', 'zeta-12'];
  assert.deepEqual([...names].sort(compareNames), ['alpha', 'beta', 'm0', 'm1', 'm2', 'm02', 'm10', 'zeta-3', 'zeta-12']);
});

test('a genesis is the same whatever order the cards come in; validators follow the members', async () => {
  const cards = await Promise.all(['m3', 'm0', 'm10', 'm1'].map((n) => card(n)));
  const a = assembleGenesis({ chainId: 'c1', baseTimeout: '1s', cards: from(cards) });
  const b = assembleGenesis({ chainId: 'c1', baseTimeout: '1s', cards: from([...cards].reverse()) });
  assert.equal(stringify(a), stringify(b));
  assert.deepEqual(a.members.map((m) => m.name), ['m0', 'm1', 'm3', 'm10']);
  assert.deepEqual(genesisValidators(a).map((v) => v.peer_id), a.members.map((m) => m.libp2p.peer_id));
  assert.match(a.digest, /^sha256:[0-9a-f]{64}$/);
  assert.notEqual(assembleGenesis({ chainId: 'c2', baseTimeout: '1s', cards: from(cards) }).digest, a.digest, 'the chain id is under the digest');
  assert.deepEqual(parseGenesisText(stringify(a), 'g.yaml'), a, 'round trip');
});

test('genesis refuses no cards, duplicates and mixed parameter sets, naming the cards', async () => {
  const [x, y] = await Promise.all([card('m0'), card('m1')]);
  const refused = (cards: MemberCard[], re: RegExp) => assert.throws(() => assembleGenesis({ chainId: 'c', baseTimeout: '1s', cards: from(cards) }),
    (e) => isFedError(e, 'GENESIS_INVALID') && re.test(e.message));
  refused([], /at least one member card/);
  refused([x!, { ...y!, name: 'm0' }], /m0\.yaml has the same name as m0\.yaml/);
  refused([x!, { ...y!, libp2p: x!.libp2p }], /m1\.yaml has the same libp2p peer id as m0\.yaml/);
  refused([x!, { ...y!, slh_dsa: x!.slh_dsa }], /m1\.yaml has the same SLH-DSA public key as m0\.yaml/);
  refused([x!, { ...y!, slh_dsa: { ...y!.slh_dsa, param_set: 'slh-dsa-sha2-128s' } }], /mixed parameter sets: m0\.yaml uses slh-dsa-sha2-128f, m1\.yaml uses slh-dsa-sha2-128s/);
  assert.throws(() => assembleGenesis({ chainId: 'no spaces', baseTimeout: '1s', cards: from([x!]) }), /chain_id/);
});

test('genesis.yaml: a changed byte breaks the digest; a re-digested but unsorted one and a newer version are refused too', async () => {
  const g = assembleGenesis({ chainId: 'c', baseTimeout: '1s', cards: from(await Promise.all([card('m0'), card('m1')])) });
  const data = parse(stringify(g)) as any;
  data.members[1].libp2p.addresses = ['/ip4/6.6.6.6/tcp/7105'];
  assert.throws(() => parseGenesisText(stringify(data), 'g.yaml'), (e) => isFedError(e, 'GENESIS_TAMPERED') && /g\.yaml: digest .* does not match/.test(e.message));
  const swapped = assembleGenesis({ chainId: 'c', baseTimeout: '1s', cards: from(g.members) });
  const unsorted = { ...swapped, members: [...swapped.members].reverse() };
  const { digest: _, ...body } = unsorted;
  const redigested = { ...body, digest: genesisDigest(body) };
  assert.throws(() => parseGenesisText(stringify(redigested), 'g.yaml'), /not in name order \(m1 before m0\)/);
  assert.throws(() => parseGenesisText(stringify({ ...data, version: 2 }), 'g.yaml'), /genesis version 2 is newer than this btcfed reads/);
});

test('a card: public facts only, its peer id derived from its key, dialable addresses', async () => {
  const c = await card('m0');
  assert.deepEqual(parseCardText(stringify(c), 'card.yaml'), c);
  const other = await generateIdentity();
  assert.throws(() => parseCardText(stringify({ ...c, libp2p: { ...c.libp2p, peer_id: other.peerId } }), 'card.yaml'), /libp2p\.peer_id: is not the peer id of libp2p\.public_key/);
  assert.throws(() => parseCardText(stringify({ ...c, libp2p: { ...c.libp2p, addresses: ['/ip4/0.0.0.0/tcp/7105'] } }), 'card.yaml'), /wildcard address nobody can dial/);
  assert.throws(() => parseCardText(stringify({ ...c, private_key: other.privateKey }), 'card.yaml'), /private_key: unknown field/);
  assert.throws(() => parseCardText(stringify({ ...c, slh_dsa: { ...c.slh_dsa, public_key: 'ab' } }), 'card.yaml'), /must be 32 bytes/);
});

test('idle_heartbeat: under the digest when present, the digest unchanged when absent, sub-second refused', async () => {
  const cards = await Promise.all(['m0', 'm1'].map((n) => card(n)));
  const plain = assembleGenesis({ chainId: 'c1', baseTimeout: '1s', cards: from(cards) });
  assert.equal(plain.idle_heartbeat, undefined);
  const { digest: _d, ...body } = plain;
  assert.equal(genesisDigest(body), plain.digest, 'a genesis without the field keeps its digest');
  const idle = assembleGenesis({ chainId: 'c1', baseTimeout: '1s', idleHeartbeat: '10s', cards: from(cards) });
  assert.equal(idle.idle_heartbeat, '10s');
  assert.notEqual(idle.digest, plain.digest, 'the heartbeat is under the digest');
  assert.deepEqual(parseGenesisText(stringify(idle), 'g.yaml'), idle, 'round trip');
  const tampered = stringify({ ...idle, idle_heartbeat: '20s' });
  assert.throws(() => parseGenesisText(tampered, 'g.yaml'), (e) => isFedError(e), 'an edited heartbeat breaks the digest');
  assert.throws(() => assembleGenesis({ chainId: 'c1', baseTimeout: '1s', idleHeartbeat: '500ms', cards: from(cards) }), /1s to 30s/);
  assert.throws(() => assembleGenesis({ chainId: 'c1', baseTimeout: '1s', idleHeartbeat: '45s', cards: from(cards) }), /1s to 30s/);
});
