// Quint's ITF trace values (`quint run --out-itf`) as plain values: #bigint → number, #set and
// #tup → arrays, #map → Map, records → objects. For the model-based replays of the specification.

export type Itf = unknown;

export function itfValue(x: Itf): any {
  if (x === null || typeof x !== 'object') return x;
  const o = x as Record<string, unknown>;
  if ('#bigint' in o) return Number(o['#bigint']);
  if ('#set' in o) return (o['#set'] as Itf[]).map(itfValue);
  if ('#tup' in o) return (o['#tup'] as Itf[]).map(itfValue);
  if ('#map' in o) return new Map((o['#map'] as [Itf, Itf][]).map(([k, v]) => [itfValue(k), itfValue(v)]));
  if (Array.isArray(x)) return x.map(itfValue);
  const r: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) r[k] = itfValue(v);
  return r;
}
