// Byte-level mutation of seed inputs, as fast-check arbitraries (so a failure shrinks and replays
// from its seed): bit flips, interesting bytes, truncation, deletion, insertion, duplication,
// splices from other seeds, and length-field tampering — a protobuf length prefix (found by
// walking the message's fields, nested ones too) or any varint rewritten to an extreme value.

import fc from 'fast-check';

type Op =
  | { k: 'flip'; at: number; bit: number }
  | { k: 'byte'; at: number; value: number }
  | { k: 'truncate'; at: number }
  | { k: 'delete'; at: number; len: number }
  | { k: 'insert'; at: number; bytes: Uint8Array }
  | { k: 'dup'; at: number; len: number }
  | { k: 'splice'; at: number; other: number; from: number; len: number }
  | { k: 'length'; which: number; value: number }
  | { k: 'varint'; at: number; value: number };

/** Values a length or count field is most likely to be wrong with. */
const EXTREMES = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 1];

const extreme = fc.oneof(fc.constantFrom(...EXTREMES), fc.integer({ min: -64, max: 64 }).map((d) => Math.max(0, 1024 + d)));

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ k: fc.constant('byte' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xfe, 0xff) }),
  fc.record({ k: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ k: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 256 }) }),
  fc.record({ k: fc.constant('splice' as const), at: fc.nat(), other: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 512 }) }),
  fc.record({ k: fc.constant('length' as const), which: fc.nat(), value: extreme }),
  fc.record({ k: fc.constant('varint' as const), at: fc.nat(), value: extreme }),
);

export function encodeVarint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  for (let i = 0; i < 9 && v >= 0x80; i++) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v % 128);
  return out;
}

/** Where a varint starting at `p` ends (exclusive), or undefined when it runs off the end. */
function varintEnd(b: Uint8Array, p: number): number | undefined {
  for (let i = p; i < b.length && i < p + 10; i++) if ((b[i]! & 0x80) === 0) return i + 1;
  return undefined;
}

function readVarint(b: Uint8Array, p: number): { value: number; end: number } | undefined {
  const end = varintEnd(b, p);
  if (end === undefined) return undefined;
  let v = 0;
  for (let i = end - 1; i >= p; i--) v = v * 128 + (b[i]! & 0x7f);
  return { value: v, end };
}

/** Offsets of the length prefixes of every length-delimited protobuf field, nested ones too (best effort). */
export function lengthFields(b: Uint8Array, start = 0, end = b.length, depth = 0, out: number[] = []): number[] {
  let p = start;
  while (p < end && out.length < 4096) {
    const tag = readVarint(b, p);
    if (!tag || tag.end > end) return out;
    p = tag.end;
    switch (tag.value % 8) {
      case 0: { const v = varintEnd(b, p); if (v === undefined) return out; p = v; break; }
      case 1: p += 8; break;
      case 5: p += 4; break;
      case 2: {
        const len = readVarint(b, p);
        if (!len || len.end + len.value > end) return out;
        out.push(p);
        if (depth < 8) lengthFields(b, len.end, len.end + len.value, depth + 1, out);
        p = len.end + len.value;
        break;
      }
      default: return out;
    }
  }
  return out;
}

function replaceVarint(b: Uint8Array, at: number, value: number): Uint8Array {
  const end = varintEnd(b, at) ?? b.length;
  return concat(b.subarray(0, at), Uint8Array.from(encodeVarint(value)), b.subarray(end));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function applyOp(input: Uint8Array, o: Op, seeds: readonly Uint8Array[]): Uint8Array {
  const n = input.length;
  const at = (x: number) => (n === 0 ? 0 : x % n);
  switch (o.k) {
    case 'flip': { if (n === 0) return input; const b = input.slice(); b[at(o.at)]! ^= 1 << o.bit; return b; }
    case 'byte': { if (n === 0) return input; const b = input.slice(); b[at(o.at)] = o.value; return b; }
    case 'truncate': return input.slice(0, at(o.at));
    case 'delete': { const p = at(o.at); return concat(input.subarray(0, p), input.subarray(p + o.len)); }
    case 'insert': { const p = n === 0 ? 0 : o.at % (n + 1); return concat(input.subarray(0, p), o.bytes, input.subarray(p)); }
    case 'dup': { const p = at(o.at); const part = input.subarray(p, p + o.len); return concat(input.subarray(0, p + part.length), part, input.subarray(p + part.length)); }
    case 'splice': {
      const other = seeds[o.other % seeds.length]!;
      const from = other.length === 0 ? 0 : o.from % other.length;
      const p = n === 0 ? 0 : o.at % (n + 1);
      return concat(input.subarray(0, p), other.subarray(from, from + o.len), input.subarray(p));
    }
    case 'length': {
      const fields = lengthFields(input);
      if (fields.length === 0) return replaceVarint(input, 0, o.value);
      return replaceVarint(input, fields[o.which % fields.length]!, o.value);
    }
    case 'varint': return n === 0 ? Uint8Array.from(encodeVarint(o.value)) : replaceVarint(input, at(o.at), o.value);
  }
}

/** A seed with one to eight mutations applied in turn. */
export function mutated(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.nat({ max: seeds.length - 1 }), fc.array(op, { minLength: 1, maxLength: 8 }))
    .map(([i, ops]) => ops.reduce((b, o) => applyOp(b, o, seeds), seeds[i]!));
}
