// The specification's command line (`npm run spec`): random simulation of spec/hotstuff.qnt with
// Quint's TypeScript backend (the Rust one is downloaded at run time), checking every safety
// invariant over the same traces, then reaching the liveness witness; then the same for block
// sync's acceptance rules (spec/sync.qnt). Ends with exactly one line
//   spec: samples=<N> steps=<S> violations=<V>
// and exits 1 on a safety violation (V > 0) or when the witness was never reached (the spec
// committed nothing: a model that cannot commit proves no safety). Must never hide either behind
// a zero exit code.
//
//   npm run spec -- --samples 2000 --seed 7 [--max-steps 40]     # a long campaign
//   node scripts/spec.ts --spec /tmp/mutant.qnt --samples 300       # another file (test/spec.test.ts)

import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The safety invariants of spec/hotstuff.qnt (docs/specification.md says what each means). */
export const SAFETY_INVARIANTS = ['agreement', 'validity', 'certified', 'epochsAgree', 'lockMonotonic', 'noDoubleVote', 'noHalt'] as const;
/** Violated as soon as an honest member commits a block: a "violation" is the witness reached. */
export const LIVENESS_WITNESS = 'noCommit';
/** Block sync's acceptance rules (spec/sync.qnt): its invariants, and its witness (the top of the chain committed). */
export const SYNC_INVARIANTS = ['committedChain', 'committedCertified', 'committedHeld', 'noUnsolicited', 'pendingAsked'] as const;
export const SYNC_WITNESS = 'notAtTop';
/** sync.qnt's traces are short: its chain is four blocks. */
const SYNC_MAX_STEPS = 12;

export interface QuintRun {
  violated: boolean;
  /** The seed that reproduces the run's violation (or the run), as Quint prints it. */
  seed: string | null;
  /** Steps taken: traces simulated times their average length in steps (Quint counts states: one more). */
  steps: number;
  output: string;
}

/** One `quint run`: `invariants` checked together on every state of every trace (module `main`, default hotstuff). */
export function quintRun(file: string, invariants: readonly string[], o: { samples: number; seed: string; maxSteps: number; itf?: string; main?: string }): QuintRun {
  const args = [
    'run', '--backend', 'typescript', file, '--main', o.main ?? 'hotstuff',
    '--invariants', ...invariants,
    '--max-samples', String(o.samples), '--max-steps', String(o.maxSteps), '--seed', o.seed,
    '--verbosity', '2',
  ];
  if (o.itf) args.push('--out-itf', o.itf);
  const r = spawnSync(join(root, 'node_modules/.bin/quint'), args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) throw r.error;
  const ok = /\[ok\] No violation found/.test(output);
  const violated = /\[violation\]/.test(output);
  if (!ok && !violated) throw new Error(`quint run failed (exit ${r.status}):\n${output.slice(-4000)}`);
  const seed = /--seed=(0x[0-9a-f]+)/.exec(output)?.[1] ?? null;
  const avg = /average=([0-9.]+)/.exec(output)?.[1];
  const traces = violated ? 1 : o.samples; // a violation stops the run; Quint does not say after how many traces
  const steps = avg ? Math.round(traces * (Number(avg) - 1)) : traces * o.maxSteps;
  return { violated, seed, steps, output };
}

/**
 * `traces` random traces of module `main` written as ITF JSON (with the action taken and the
 * nondeterministic picks of each step, --mbt) into `dir`: the files, in order.
 */
export function quintTraces(file: string, main: string, dir: string, o: { traces: number; seed: string; maxSteps: number }): string[] {
  const r = spawnSync(join(root, 'node_modules/.bin/quint'), [
    'run', '--backend', 'typescript', file, '--main', main,
    '--max-samples', String(o.traces), '--n-traces', String(o.traces), '--max-steps', String(o.maxSteps), '--seed', o.seed,
    '--mbt', '--out-itf', join(dir, 't{seq}.itf.json'), '--verbosity', '0',
  ], { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`quint run (traces of ${main}) failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  return Array.from({ length: o.traces }, (_, k) => join(dir, `t${k}.itf.json`));
}

/** After a combined run failed: which invariants the reproducing trace violates. */
function whichViolated(file: string, seed: string, maxSteps: number): string[] {
  return SAFETY_INVARIANTS.filter((inv) => quintRun(file, [inv], { samples: 1, seed, maxSteps }).violated);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      samples: { type: 'string', default: '200' },
      seed: { type: 'string', default: '1' },
      'max-steps': { type: 'string', default: '40' },
      spec: { type: 'string', default: join(root, 'spec/hotstuff.qnt') },
      'out-itf': { type: 'string' },
    },
  });
  const samples = Number(values.samples);
  const maxSteps = Number(values['max-steps']);
  if (!Number.isSafeInteger(samples) || samples < 1) throw new Error(`--samples: a positive integer, got ${values.samples}`);
  if (!Number.isSafeInteger(maxSteps) || maxSteps < 1) throw new Error(`--max-steps: a positive integer, got ${values['max-steps']}`);
  const seed = values.seed;
  const file = values.spec;

  const safety = quintRun(file, SAFETY_INVARIANTS, { samples, seed, maxSteps, ...(values['out-itf'] ? { itf: values['out-itf'] } : {}) });
  let violations = 0;
  if (safety.violated) {
    const names = safety.seed ? whichViolated(file, safety.seed, maxSteps) : [];
    violations = Math.max(1, names.length);
    console.log(`spec: VIOLATED ${names.join(', ') || SAFETY_INVARIANTS.join(' or ')}; replay: node_modules/.bin/quint run --backend typescript ${file} --main hotstuff --invariants ${SAFETY_INVARIANTS.join(' ')} --max-samples 1 --max-steps ${maxSteps} --seed ${safety.seed} --verbosity 3`);
  }
  const witness = quintRun(file, [LIVENESS_WITNESS], { samples, seed, maxSteps });
  if (witness.violated) console.log(`spec: liveness witness reached (an honest member committed), seed ${witness.seed}`);
  else console.log(`spec: liveness witness NOT reached in ${samples} traces: the spec never committed`);
  // Block sync, in its own module: the same samples and seed.
  const syncFile = join(root, 'spec/sync.qnt');
  const sync = quintRun(syncFile, SYNC_INVARIANTS, { samples, seed, maxSteps: SYNC_MAX_STEPS, main: 'sync' });
  if (sync.violated) {
    violations++;
    console.log(`spec: VIOLATED in spec/sync.qnt; replay: node_modules/.bin/quint run --backend typescript ${syncFile} --main sync --invariants ${SYNC_INVARIANTS.join(' ')} --max-samples 1 --max-steps ${SYNC_MAX_STEPS} --seed ${sync.seed} --verbosity 3`);
  }
  const syncWitness = quintRun(syncFile, [SYNC_WITNESS], { samples, seed, maxSteps: SYNC_MAX_STEPS, main: 'sync' });
  console.log(syncWitness.violated ? `spec: block sync's witness reached (the top of the chain committed), seed ${syncWitness.seed}` : 'spec: block sync\'s witness NOT reached: nothing synced commits the top');
  console.log(`spec: samples=${samples} steps=${safety.steps + sync.steps} violations=${violations}`);
  process.exitCode = violations > 0 || !witness.violated || !syncWitness.violated ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
