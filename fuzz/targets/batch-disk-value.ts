// Target batch-disk-value: a value of the batches on disk as a restart reads it back
// (services/consensus/batch-codec.ts decodeGroup, then decodeBatch for each batch in it). The
// environment is not fsynced, so a machine that stops can leave any bytes in it, and the
// transactions inside came from peers. Refusal: a group that does not parse says why (the load
// deletes and counts it); decoding never throws. Properties: a group every batch of which parses
// in the current layout (version 2, with the epoch its numbers are of) is exactly the encoding of
// what was read (the decoder accepts one layout per version, so nothing a damaged value holds is
// read as something else); a batch read has at least one transaction, none empty, a finite time
// and an epoch a number can hold (none: version 1, written before batches kept it); each digest is
// 32 bytes.

import fc from 'fast-check';
import { decodeGroup, encodeGroup, type DiskBatch } from '../../services/consensus/batch-codec.ts';
import { violated, type FuzzTarget } from '../engine.ts';

class GroupRefused extends Error {}

type Entry = { digest: Uint8Array; b: DiskBatch };

const batches = fc.record({
  holder: fc.nat({ max: 0xffff_ffff }),
  author: fc.nat({ max: 0xffff_ffff }),
  epoch: fc.maxSafeNat(),
  atMs: fc.double({ noNaN: true, noDefaultInfinity: true }),
  txs: fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 12 }),
});
const entries = fc.array(fc.record({ digest: fc.uint8Array({ minLength: 32, maxLength: 32 }), b: batches }), { minLength: 1, maxLength: 6 });

/** A plain copy of what was read (views into the value become arrays of their own): for comparing. */
function plain(list: readonly Entry[]): Entry[] {
  return list.map(({ digest, b }) => ({ digest: Uint8Array.from(digest), b: { holder: b.holder, author: b.author, epoch: b.epoch, atMs: b.atMs, txs: b.txs.map((t) => Uint8Array.from(t)) } }));
}

function read(input: Uint8Array): Array<{ digest: Uint8Array; b: DiskBatch | { why: string } }> {
  const got = decodeGroup(input);
  if ('why' in got) throw new GroupRefused(got.why);
  const whole: Entry[] = [];
  for (const [i, e] of got.entries()) {
    if (e.digest.length !== 32) violated(`batch ${i}: a digest of ${e.digest.length} bytes`);
    if ('why' in e.b) continue;
    if (e.b.txs.length === 0) violated(`batch ${i}: read with no transactions`);
    if (e.b.txs.some((t) => t.length === 0)) violated(`batch ${i}: an empty transaction`);
    if (!Number.isFinite(e.b.atMs)) violated(`batch ${i}: time ${e.b.atMs}`);
    if (e.b.epoch !== undefined && !Number.isSafeInteger(e.b.epoch)) violated(`batch ${i}: epoch ${e.b.epoch}`);
    whole.push({ digest: e.digest, b: e.b });
  }
  // A version 1 batch is read without its epoch, and written again as version 2: not the same bytes.
  if (whole.length === got.length && whole.every((e) => e.b.epoch !== undefined) && !Buffer.from(encodeGroup(whole)).equals(Buffer.from(input.buffer, input.byteOffset, input.length))) {
    violated('a group read whole is not the encoding of what was read');
  }
  return got;
}

/** A valid group, then damaged: cut short, a byte changed, or bytes added. */
const damaged = fc.tuple(entries, fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 3 }), fc.uint8Array({ maxLength: 16 })).map(([es, at, byte, how, extra]) => {
  const v = Uint8Array.from(encodeGroup(es));
  const i = at % v.length;
  if (how === 0) return v.subarray(0, i);
  if (how === 1) { v[i] = byte; return v; }
  if (how === 2) return Uint8Array.from([...v, ...extra]);
  return v;
});

/**
 * A group laid out by hand (the layout in batch-codec.ts) with its fields at extremes: counts that
 * disagree with what follows, empty transactions, lengths past the end, any time (NaN, infinities),
 * either version, epochs past what a number holds.
 */
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return [...b]; };
const laid = fc.array(fc.record({
  txs: fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }),
  count: fc.option(fc.constantFrom(0, 1, 5, 0xffff_ffff), { nil: undefined }),
  lenSkew: fc.constantFrom(0, 0, 0, 1, -1, 0x7fff_ffff),
  atMs: fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0)),
  version: fc.constantFrom(2, 2, 2, 1, 1, 0, 3, 255),
  epoch: fc.constantFrom(0n, 1n, 7n, BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER) + 1n, 0xffff_ffff_ffff_ffffn),
}), { maxLength: 4 }).chain((bs) => fc.tuple(fc.constant(bs), fc.option(fc.constantFrom(0, 1, 7, 0xffff_ffff), { nil: undefined }))).map(([bs, groupCount]) => {
  const out: number[] = [2, ...u32(groupCount ?? bs.length)];
  for (const b of bs) {
    const at = Buffer.alloc(8); at.writeDoubleBE(b.atMs);
    const epoch = Buffer.alloc(8); epoch.writeBigUInt64BE(b.epoch);
    const inner = [b.version, ...u32(1), ...u32(2), ...(b.version === 1 ? [] : [...epoch]), ...at, ...u32(b.count ?? b.txs.length), ...b.txs.flatMap((t) => [...u32(t.length), ...t])];
    out.push(...new Array<number>(32).fill(7), ...u32(inner.length + b.lenSkew), ...inner);
  }
  return Uint8Array.from(out);
});

export const batchDiskValue: FuzzTarget<Entry[]> = {
  name: 'batch-disk-value',
  describe: 'a value of the batches on disk as a restart reads it back (a torn environment can hold any bytes; the transactions came from peers)',
  sources: ['services/consensus/batch-codec.ts'],
  generate: fc.oneof(damaged, laid, fc.uint8Array({ maxLength: 400 }).map((b) => Uint8Array.from([2, ...b]))),
  run: (input) => { read(input); },
  refusal: (err) => err instanceof GroupRefused,
  roundTrip: {
    values: entries,
    encode: (es) => Uint8Array.from(encodeGroup(es)),
    decode: (bytes) => plain(read(bytes).map((e) => ('why' in e.b ? violated(`a batch encoded whole does not read: ${e.b.why}`) : { digest: e.digest, b: e.b }))),
    expected: (es) => plain(es),
  },
};
