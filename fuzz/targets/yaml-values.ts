// Structure-aware YAML inputs: a valid document (from the target's corpus) with one to three
// fields replaced by extreme values, re-serialised; plus YAML's own hazards (alias bombs, deep
// nesting, duplicate keys, tags) that a hostile file (a member card from another operator) may hold.

import fc from 'fast-check';
import { parse, stringify } from 'yaml';

const extreme: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 0, 2 ** 31, 2 ** 53, 1e308, -0, 0.5, Number.NaN, '', ' ', 'x'.repeat(5000), '\u0000', '../../etc/passwd', '/ip4/1.2.3.4/tcp/99999',
    '1ns', '999999999h', '-5s', 'ab'.repeat(2000), null, true, [], {}, [[[[[]]]]]),
  fc.string({ maxLength: 30 }), fc.integer(), fc.double(),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 300 }),
);

function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const p = [...prefix, Array.isArray(v) ? Number(k) : k];
      out.push(p);
      paths(x, p, out);
    }
  }
  return out;
}

function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy: Record<string | number, unknown> = Array.isArray(root) ? [...root] as never : { ...(root as object) };
  copy[path[0]!] = setAt(copy[path[0]!], path.slice(1), value);
  return copy;
}

const HAZARDS = [
  'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
  'a: 1\na: 2\n',
  `${'['.repeat(2000)}${']'.repeat(2000)}\n`,
  'x: !!binary aGVsbG8=\n', 'x: !!js/function "f(){}"\n', '? [a, b]\n: c\n', '%YAML 1.1\n---\nx: 0o777\n', '--- a\n--- b\n',
  '<<: *nope\n', 'x: &x\n  y: *x\n', '"\\uD800": 1\n', 'x: 1e999999\n',
];

/** Documents from the seeds with fields set to extremes, and the hazards. */
export function yamlInputs(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const docs = seeds.map((s) => { try { return parse(Buffer.from(s).toString('utf8')) as unknown; } catch { return {}; } });
  const enc = new TextEncoder();
  const edited = docs.length === 0 ? fc.constant({}) : fc.nat({ max: docs.length - 1 }).chain((i) => {
    const doc = docs[i];
    const ps = paths(doc);
    if (ps.length === 0) return fc.constant(doc);
    return fc.array(fc.tuple(fc.nat({ max: ps.length - 1 }), extreme), { minLength: 1, maxLength: 3 })
      .map((edits) => edits.reduce((d, [p, v]) => setAt(d, ps[p]!, v), doc));
  });
  return fc.oneof(
    { weight: 4, arbitrary: edited.map((d) => enc.encode(stringify(d))) },
    { weight: 1, arbitrary: fc.constantFrom(...HAZARDS).map((h) => enc.encode(h)) },
  );
}
