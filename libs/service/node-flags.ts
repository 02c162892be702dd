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

export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];
