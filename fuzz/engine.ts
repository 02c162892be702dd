// The fuzz engine: one target's inputs run for a time budget on fast-check, and what each run must
// establish. Inputs are a mix of the target's structure-aware generation (real messages from the
// project's own encoders, fields set to extremes) and byte-level mutation of its seed corpus
// (fuzz/corpus/<target>/). Per input: no crash (only the target's documented refusal may come out),
// no hang (each input within a time bound), and decode(encode(x)) equal to x for the valid x the
// target builds; per run: the heap bounded after a full collection. A failure carries the input
// (hex), the seed and fast-check's path, so `npm run fuzz -- --target T --seed S` replays it.
// Must never swallow a failure: anything a target throws that is not its refusal is reported.

import fc from 'fast-check';
import { mutated } from './mutate.ts';

/** A property a target asserts about its own output (round trips, bounds): always a failure. */
export class FuzzViolation extends Error {
  override name = 'FuzzViolation';
}

export function violated(what: string): never {
  throw new FuzzViolation(what);
}

export interface FuzzTarget<T = unknown> {
  name: string;
  /** What bytes a peer or client chooses here, and who reads them (docs/fuzzing.md lists it). */
  describe: string;
  /** Repository paths of the code under the target: branch coverage is reported for these. */
  sources: string[];
  /** Structure-aware inputs: real encodings of valid messages with fields set to extremes. */
  generate: fc.Arbitrary<Uint8Array>;
  /** Reads one input as the service would; throws only its refusal (or a FuzzViolation). */
  run(input: Uint8Array): void | Promise<void>;
  /**
   * Time allowed per KiB of input on top of the fixed bound, for parsers that are linear but slow
   * (YAML: a few µs a byte): a super-linear blowup still goes past it.
   */
  msPerKiB?: number;
  /** Whether an error `run` threw is the target's documented refusal of bad input. */
  refusal(err: unknown): boolean;
  /** Valid values and their encoding: decode(encode(x)) must equal x. */
  roundTrip?: { values: fc.Arbitrary<T>; encode(x: T): Uint8Array; decode(bytes: Uint8Array): unknown; expected?(x: T): unknown };
}

export interface FuzzOptions {
  /** Wall-clock budget for the run. */
  ms: number;
  seed: number;
  /** Most CPU milliseconds one input may take (a slow input is re-run once: a GC pause is not a hang); wall time WALL_FACTOR times that. */
  timeBoundMs?: number;
  /** Most heap in use after a full collection at the end of the run. */
  heapBoundBytes?: number;
  /** Seed inputs (the target's corpus); without any, only structure-aware generation. */
  corpus?: Uint8Array[];
}

export interface FuzzFailure {
  target: string;
  seed: number;
  path?: string | undefined;
  inputHex: string;
  error: string;
}

export interface FuzzResult {
  target: string;
  seed: number;
  execs: number;
  refused: number;
  roundTrips: number;
  slowest_ms: number;
  heapBytes: number;
  failure?: FuzzFailure | undefined;
}

/** How many times the CPU bound an input may take in wall time (waiting, or descheduled on a busy machine). */
export const WALL_FACTOR = 10;

type Case = { kind: 'input'; bytes: Uint8Array } | { kind: 'valid'; value: unknown };

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return `a non-Error was thrown: ${String(err)}`;
}

export async function runTarget(target: FuzzTarget, opts: FuzzOptions): Promise<FuzzResult> {
  const timeBound = opts.timeBoundMs ?? 100;
  const heapBound = opts.heapBoundBytes ?? 512 << 20;
  const result: FuzzResult = { target: target.name, seed: opts.seed, execs: 0, refused: 0, roundTrips: 0, slowest_ms: 0, heapBytes: 0 };
  const sources: fc.Arbitrary<Case>[] = [target.generate.map((bytes) => ({ kind: 'input' as const, bytes }))];
  if (opts.corpus && opts.corpus.length > 0) {
    // Mutation weighs double: real captured messages reach deeper than random structure.
    const m = mutated(opts.corpus).map((bytes) => ({ kind: 'input' as const, bytes }));
    sources.push(m, m);
  }
  if (target.roundTrip) sources.push(target.roundTrip.values.map((value) => ({ kind: 'valid' as const, value })));
  const cases = fc.oneof(...sources);

  // A hang is judged by the CPU the input costs this process, not by wall time: on a shared
  // machine (CI runs other tests beside the fuzz children) wall time measures the neighbours too —
  // a linear 58 kB YAML took 407 ms of wall time in a CI run, 85 ms of CPU. An input that waits
  // without spending CPU (an await that never settles soon) is caught by the wall bound, WALL_FACTOR
  // times the CPU bound.
  const once = async (bytes: Uint8Array): Promise<{ cpu: number; wall: number }> => {
    const wall0 = performance.now();
    const cpu0 = process.cpuUsage();
    try {
      await target.run(bytes);
    } catch (err) {
      if (err instanceof FuzzViolation || !target.refusal(err)) throw err;
      result.refused++;
    }
    const cpu = process.cpuUsage(cpu0);
    return { cpu: (cpu.user + cpu.system) / 1000, wall: performance.now() - wall0 };
  };
  const runCase = async (c: Case): Promise<void> => {
    result.execs++;
    let bytes: Uint8Array;
    if (c.kind === 'valid') {
      const rt = target.roundTrip!;
      bytes = rt.encode(c.value);
      const back = rt.decode(bytes);
      const want = rt.expected ? rt.expected(c.value) : c.value;
      if (canonical(back) !== canonical(want)) violated(`round trip changed the value:\n  sent ${inspectShort(want)}\n  got  ${inspectShort(back)}`);
      result.roundTrips++;
    } else {
      bytes = c.bytes;
    }
    const bound = timeBound + (target.msPerKiB ?? 0) * (bytes.length / 1024);
    const over = (t: { cpu: number; wall: number }) => t.cpu > bound || t.wall > WALL_FACTOR * bound;
    let t = await once(bytes);
    if (over(t)) {
      const again = await once(bytes);
      if (over(again)) {
        const what = again.cpu > bound ? `${Math.min(t.cpu, again.cpu).toFixed(1)} ms of CPU (bound ${bound.toFixed(0)} ms)`
          : `${Math.min(t.wall, again.wall).toFixed(1)} ms of wall time (bound ${(WALL_FACTOR * bound).toFixed(0)} ms)`;
        violated(`input of ${bytes.length} bytes took ${what} twice`);
      }
      t = again;
    }
    if (t.cpu > result.slowest_ms) result.slowest_ms = t.cpu;
  };

  const out = await fc.check(fc.asyncProperty(cases, runCase), {
    seed: opts.seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: opts.ms, markInterruptAsFailure: false,
    // Shrinking is bounded too: a failure is reported with the smallest input found in 20 s.
    skipAllAfterTimeLimit: opts.ms + 20_000,
  });
  if (out.failed && out.counterexample) {
    const c = out.counterexample[0] as Case;
    const bytes = c.kind === 'input' ? c.bytes : safeEncode(target, c.value);
    result.failure = { target: target.name, seed: opts.seed, path: out.counterexamplePath ?? undefined, inputHex: toHex(bytes),
      error: describeError(out.errorInstance) };
  }
  (globalThis as { gc?: () => void }).gc?.();
  result.heapBytes = process.memoryUsage().heapUsed;
  if (!result.failure && result.heapBytes > heapBound) {
    result.failure = { target: target.name, seed: opts.seed, inputHex: '', error: `heap in use after the run is ${result.heapBytes} bytes (bound ${heapBound})` };
  }
  return result;
}

function safeEncode(target: FuzzTarget, value: unknown): Uint8Array {
  try { return target.roundTrip!.encode(value); } catch { return new Uint8Array(); }
}

/** Values compared as the wire sees them: an absent field and an undefined one are the same, bytes as hex. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x instanceof Uint8Array) return `0x${toHex(x)}`;
    if (x && typeof x === 'object' && !Array.isArray(x)) return Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1)));
    return x;
  }) ?? 'undefined';
}

function inspectShort(v: unknown): string {
  const s = JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? `0x${toHex(x).slice(0, 64)}${x.length > 32 ? '…' : ''}` : x));
  return s === undefined ? String(v) : s.length > 600 ? `${s.slice(0, 600)}…` : s;
}
