// Target peer-exchange: one message on /vtcp/btc-foundation/v1.0.0 from any connected peer —
// a length-prefixed PeerExchangeMessage (services/gateway/exchange.ts readOne) — and, for a peer
// list or announce, its records through the filter every learned record passes
// (services/gateway/exchange-filter.ts filterRecords). Refusal: an Error from the framing or the
// protobuf reader (readOne rejects, the exchange is counted failed). filterRecords must never
// throw, and what it lets through must hold its promises: not self, at most
// MAX_ADDRESSES_PER_PEER addresses, each one an address addressProblem accepts.

import fc from 'fast-check';
import { PeerExchangeMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { FrameDecoder } from '../../services/gateway/framing.ts';
import { MAX_EXCHANGE_MESSAGE_BYTES } from '../../services/gateway/exchange.ts';
import { MAX_ADDRESSES_PER_PEER, addressProblem, filterRecords } from '../../services/gateway/exchange-filter.ts';
import { violated, type FuzzTarget } from '../engine.ts';
import { protoBytes } from './wire-frame.ts';
import { streamOf } from './gateway-framing.ts';

/** Fixed identities (Ed25519 libp2p keys, base64 protobuf as peers.yaml holds them). */
export const SELF = { publicKey: 'CAESIO9+UXarQshWekhAMeslJFCEac7vEsp2hFOKHV1jMawz', peerId: '12D3KooWRwFKoiBMDZse1iXnG8E2Du6F9kzEpKXdcsNqZrLNA8Ft' };
export const OTHERS = [
  'CAESIArGqSFIdhYoayXGde10F+bk6EzqfCn/1o2Latrp4NyG', 'CAESIKDGTkCVqlaJKv2AEWLzSNHXkboRWht/xBuSrKzr9NhQ', 'CAESIG1LvlYRIl7EZhN3demCkXYhIELaWOzL9T5ySAzhna1/',
];

const address = fc.oneof(
  fc.constantFrom('/ip4/203.0.113.7/tcp/7105', '/ip4/10.0.0.1/tcp/7105', '/ip6/2001:db8::1/tcp/7105', '/dns4/peer.example.org/tcp/7105', '/ip4/0.0.0.0/tcp/1',
    '/ip4/203.0.113.7/tcp/0', '/ip4/203.0.113.7/tcp/70000', '/ip4/999.1.1.1/tcp/1', '/dns4/-bad-/tcp/1', '/ip4/203.0.113.7/tcp/7105/p2p/12D3KooWRwFKoiBMDZse1iXnG8E2Du6F9kzEpKXdcsNqZrLNA8Ft',
    '/ip6/::ffff:127.0.0.1/tcp/5', '/unix/tmp/x', '', '/', '/ip4', `/dns4/${'a'.repeat(300)}/tcp/1`),
  fc.string({ maxLength: 40 }),
);
const publicKey = fc.oneof(fc.constantFrom(SELF.publicKey, ...OTHERS, '', 'not base64!', 'CAESIA=='), fc.base64String({ maxLength: 60 }));
const record = fc.record({ publicKey, addresses: fc.oneof(fc.array(address, { maxLength: 4 }), fc.array(address, { minLength: 9, maxLength: 40 })) });
const records = fc.oneof({ weight: 4, arbitrary: fc.array(record, { maxLength: 8 }) }, { weight: 1, arbitrary: fc.array(record, { minLength: 201, maxLength: 220 }) });
const message: fc.Arbitrary<PeerExchangeMessage> = fc.oneof(
  fc.record({ limit: fc.oneof(fc.nat({ max: 300 }), fc.constant(2 ** 32 - 1)) }).map((value) => ({ body: { $case: 'request' as const, value } })),
  records.map((peers) => ({ body: { $case: 'list' as const, value: { peers } } })),
  records.map((peers) => ({ body: { $case: 'announce' as const, value: { peers } } })),
  fc.constant({ body: undefined }),
);

function read(input: Uint8Array): PeerExchangeMessage | undefined {
  const [frame] = new FrameDecoder(MAX_EXCHANGE_MESSAGE_BYTES).push(input);
  return frame ? PeerExchangeMessage.decode(frame) : undefined;
}

/** What readOne does with an error of the framing or the reader: the exchange fails, counted. */
class ReadFailed extends Error {}

function run(input: Uint8Array): void {
  let msg: PeerExchangeMessage | undefined;
  try { msg = read(input); } catch (err) { throw new ReadFailed(String(err)); }
  if (msg?.body?.$case !== 'list' && msg?.body?.$case !== 'announce') return;
  const { fresh } = filterRecords(msg.body.value.peers, {
    selfPeerId: SELF.peerId, known: () => undefined, dropPrivate: true, networks: undefined, validator: () => undefined,
  }, 1_700_000_000_000);
  for (const p of fresh) {
    if (p.peerId === SELF.peerId) violated('filterRecords let our own record through');
    if (p.addresses.length > MAX_ADDRESSES_PER_PEER) violated(`${p.addresses.length} addresses for ${p.peerId}`);
    for (const a of p.addresses) if (addressProblem(a, p.peerId, true) !== undefined) violated(`address ${a} let through for ${p.peerId}`);
  }
}

export const peerExchange: FuzzTarget<PeerExchangeMessage> = {
  name: 'peer-exchange',
  describe: 'a peer-exchange message from any connected peer (request, list, announce) and the filter over its records (keys, multiaddrs, private and foreign addresses, caps)',
  sources: ['services/gateway/exchange-filter.ts', 'services/gateway/framing.ts', 'libs/config/values.ts', 'libs/gen/btcfed/v1/gateway.pb.ts'],
  generate: message.map((m) => streamOf([protoBytes(PeerExchangeMessage.encode, m)], MAX_EXCHANGE_MESSAGE_BYTES)),
  run,
  // Up to 256 KiB of records, each key and multiaddr parsed: linear, but not free.
  msPerKiB: 2,
  // readOne catches whatever the framing or the reader throws and fails that one exchange.
  refusal: (err) => err instanceof ReadFailed,
  roundTrip: { values: message, encode: (m) => streamOf([PeerExchangeMessage.encode(m).finish()], MAX_EXCHANGE_MESSAGE_BYTES), decode: read },
};
