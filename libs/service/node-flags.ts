// The Node.js (V8) flags and environment every service runs with: one list, used by `btcfed
// devnet`, the test bed and written into each systemd unit (a test checks the units carry them).
//
// --max-semi-space-size=32 (MiB, twice V8's default of 16): every service allocates short-lived
// buffers of tens of kilobytes per message (SLH-DSA signatures of 17 kB, QCs of 50–260 kB,
// transaction batches), which fill the young generation quickly; with the default, the
// scavenges that follow were 11–12 % of consensus's and the gateway's busy time in a CPU profile
// under load. Measured with `node bench/federation.ts --members 4 --seconds 15`, four runs each,
// interleaved: 4,870 against 4,370 committed tx/s on average and 361 against 401 CPU-µs per
// committed transaction; 64 MiB was worse than either (4,120 tx/s). docs/performance.md has the runs.

//
// --incremental-marking-soft-trigger=70 / --incremental-marking-hard-trigger=90: start a major GC's
// incremental marking when 70 % (by a task) or 90 % (at once) of the old generation's room up to
// its limit is used. Without them V8 starts marking as soon as that room is smaller than the
// young generation could promote — which, with the services' heaps of about 30 MiB and a limit
// 40 MiB above, was always: consensus ran a major GC every 0.6–0.7 s when idle at N = 4 and no
// scavenge at all. Set on one live consensus process of an N = 4 devnet (the others unchanged):
// 27 → 5 major GCs in 20 s, its CPU 163 → 111 ms a second; docs/performance.md has the runs.

import path from 'node:path';

export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--incremental-marking-soft-trigger=70', '--incremental-marking-hard-trigger=90'];

/**
 * Node's module compile cache: V8's compiled code of every module (TypeScript included), kept on
 * disk and reused while the file is unchanged. Loading a service's modules cost 1.3–1.7 s of CPU
 * here, 0.3–0.5 s less with the cache (docs/performance.md). On a host that runs many processes
 * (a devnet, the tests) a restarted service is back that much sooner. Set through the environment because ESM
 * loads every static import before the first line of main.ts runs; the systemd units set it to
 * their CacheDirectory. An operator's own NODE_COMPILE_CACHE (or NODE_DISABLE_COMPILE_CACHE=1)
 * wins.
 */
export const COMPILE_CACHE_DIR = path.resolve(import.meta.dirname, '../../node_modules/.cache/btcfed-compile-cache');

/** The environment a service is started with: ours, plus the compile cache unless one is set. */
export function serviceEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.NODE_COMPILE_CACHE !== undefined || env.NODE_DISABLE_COMPILE_CACHE !== undefined) return env;
  return { ...env, NODE_COMPILE_CACHE: COMPILE_CACHE_DIR };
}
