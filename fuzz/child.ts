// One target's campaign in its own process (fuzz/run.ts starts it with NODE_V8_COVERAGE set, so
// the coverage V8 writes at exit is this target's alone). Prints one JSON line: the FuzzResult,
// with any unhandled rejection or uncaught exception of the run as its failure.
// Usage: node --expose-gc fuzz/child.ts <target> <ms> <seed>

import { runTarget, toHex, type FuzzResult } from './engine.ts';
import { loadCorpus } from './corpus.ts';
import { targetNamed } from './targets/index.ts';

const [name = '', ms = '1000', seed = '0'] = process.argv.slice(2);
const target = targetNamed(name);
if (!target) {
  console.error(`fuzz: no target ${name}`);
  process.exit(2);
}
let stray: string | undefined;
process.on('unhandledRejection', (err) => { stray ??= `unhandled rejection: ${err instanceof Error ? err.stack : String(err)}`; });
// An exception outside any input's run (the engine or a generator broke): reported, and the run ends.
process.on('uncaughtException', (err) => {
  const failure = { target: name, seed: Number(seed), inputHex: '', error: `uncaught exception: ${err.stack ?? String(err)}` };
  process.stdout.write(`${JSON.stringify({ target: name, seed: Number(seed), execs: 0, refused: 0, roundTrips: 0, slowest_ms: 0, heapBytes: 0, failure })}\n`);
  process.exit(1);
});

const result: FuzzResult = await runTarget(target, { ms: Number(ms), seed: Number(seed), corpus: loadCorpus(name) });
// Rejections surface a tick late: give them one turn of the loop before reporting.
await new Promise((r) => setTimeout(r, 50));
if (stray && !result.failure) result.failure = { target: name, seed: Number(seed), inputHex: toHex(new Uint8Array()), error: stray };
process.stdout.write(`${JSON.stringify(result)}\n`);
