// Reconfiguration schedules for the simulator (epochs.ts): the issue's own, and random ones for
// campaigns. Pure: a seed gives a scenario.

import { Prng } from './prng.ts';
import { applyChanges, type SimChange, type Validator } from './epoch-checks.ts';
import type { ReconfigScenario } from './epochs.ts';

/** The schedule of the issue's scenario: 4 → 5 → 7 → 6 members, then m1's key rotated. */
export const GROW_SHRINK_ROTATE: SimChange[][] = [
  [{ kind: 'add', name: 'm4', identity: 4 }],
  [{ kind: 'add', name: 'm5', identity: 5 }, { kind: 'add', name: 'm6', identity: 6 }],
  [{ kind: 'remove', name: 'm2' }],
  [{ kind: 'rotate', name: 'm1', identity: 7 }],
];

/**
 * A random reconfiguration scenario: 4, 5 or 7 members; 2–5 changes of 1–3 operations each (adds
 * with fresh keys, removals down to 4 members, rotations to fresh keys); messages lost until a
 * heal; often one member cut off across boundaries; often removed members that keep signing.
 */
export function drawReconfig(seed: number): ReconfigScenario {
  const rng = new Prng(seed ^ 0xe90c);
  const n = rng.pick([4, 5, 7]);
  let set: Validator[] = Array.from({ length: n }, (_, i) => ({ name: `m${i}`, identity: i }));
  let nextIdentity = n;
  let nextName = n;
  const changes: SimChange[][] = [];
  for (let e = 0, count = 2 + rng.int(4); e < count; e++) {
    const ops: SimChange[] = [];
    const touched = new Set<string>();
    let size = set.length;
    for (let k = 0, opsCount = 1 + rng.int(3); k < opsCount; k++) {
      const r = rng.next();
      const free = set.filter((v) => !touched.has(v.name));
      if (r < 0.4 || free.length === 0) {
        ops.push({ kind: 'add', name: `m${nextName++}`, identity: nextIdentity++ });
        size++;
      } else if (r < 0.7 && size > 4) {
        const v = rng.pick(free);
        touched.add(v.name);
        ops.push({ kind: 'remove', name: v.name });
        size--;
      } else {
        const v = rng.pick(free);
        touched.add(v.name);
        ops.push({ kind: 'rotate', name: v.name, identity: nextIdentity++ });
      }
    }
    changes.push(ops);
    set = applyChanges(set, ops);
  }
  const all = [...new Set(changes.flat().map((o) => o.name).concat(Array.from({ length: n }, (_, i) => `m${i}`)))];
  return {
    seed,
    n,
    changes,
    changeAfterMs: rng.range(50, 400),
    dropRate: rng.pick([0, 0.05, 0.15, 0.3]),
    roughUntilMs: rng.range(500, 4000),
    delayMs: rng.pick<[number, number]>([[1, 15], [1, 60], [5, 40]]),
    ...(rng.chance(0.5) ? { isolate: { name: rng.pick(all), fromMs: rng.range(0, 1500), toMs: rng.range(1500, 5000) } } : {}),
    removedKeepSigning: rng.chance(0.5),
    ...(rng.chance(0.3) ? { withholder: rng.pick(all) } : {}),
    maxTimeMs: 120_000,
  };
}
