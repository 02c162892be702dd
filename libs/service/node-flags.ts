// The Node.js (V8) flags every service runs with: one list, used by `btcfed devnet`, the test bed
// and written into each systemd unit's ExecStart (a test checks the units carry it).
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

export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32', '--incremental-marking-soft-trigger=70', '--incremental-marking-hard-trigger=90'];
