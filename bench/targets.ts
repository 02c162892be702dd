// The performance targets the federation benchmark reports against, each with what this run
// measured and whether it is met: a printed verdict for people and scripts, never an assertion
// (these machines are shared and noisy). A target the run's settings cannot measure says which
// flags would (the open-loop latency needs --rate 5000; recovery is skipped with --no-recovery).

export interface RunFigures {
  members: number;
  /** tx/s offered in the open loop; undefined for the closed loop. */
  openRate: number | undefined;
  throughputTxS: number;
  committedTxs: number;
  idleP50Ms: number;
  cpuFloorMs: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Committed tx/s with one member's consensus dead for good (--dead-member); undefined: not measured. */
  deadThroughputTxS?: number | undefined;
  /** Kill -9 of the leader's consensus → the next block of a later view; undefined: not measured. */
  recoveryMs: number | undefined;
  /** Mean over members of CPU per committed transaction (µs); undefined when nothing committed. */
  perMemberTxUs: number | undefined;
  /** One member's four services: the sum of each service's largest RSS (an upper bound), MiB. */
  rssPerMemberMiB: number;
}

export type Verdict = 'met' | 'not met' | 'not measured';

export interface TargetRow {
  target: string;
  measured: string;
  verdict: Verdict;
}

export const TARGETS = {
  idleOverCpuFloor: 1.5,
  n4ThroughputTxS: 25_000,
  openRateTxS: 5_000,
  openP50Ms: 1_000,
  openP99Ms: 2_000,
  n21IdleMs: 1_000,
  n21ThroughputTxS: 10_000,
  perMemberTxUs: 100,
  recoveryMs: 10_000,
  /** Committed tx/s with one member dead, against the healthy run's (N ≥ 7). */
  deadShare: 0.8,
  /** 1.5 GB (10^9 bytes) in MiB, rounded down. */
  rssPerMemberMiB: 1_430,
} as const;

const row = (target: string, measured: string, ok: boolean | undefined): TargetRow =>
  ({ target, measured, verdict: ok === undefined ? 'not measured' : ok ? 'met' : 'not met' });

const n = (x: number): string => Math.round(x).toLocaleString('en-US');

/** The targets that apply to a run of this size and load, in the order the issue lists them. */
export function targetRows(r: RunFigures): TargetRow[] {
  const t = TARGETS;
  const rows: TargetRow[] = [];
  const committed = r.committedTxs > 0;
  if (r.members === 4) {
    const ratio = r.idleP50Ms / r.cpuFloorMs;
    rows.push(row(`idle block interval within ${t.idleOverCpuFloor}× the CPU floor`,
      Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : 'n/a', Number.isFinite(ratio) ? ratio <= t.idleOverCpuFloor : undefined));
    const closed = r.openRate === undefined;
    rows.push(row(`at least ${n(t.n4ThroughputTxS)} committed tx/s (closed loop)`, closed ? `${n(r.throughputTxS)} tx/s` : 'open loop: run without --rate',
      closed ? r.throughputTxS >= t.n4ThroughputTxS : undefined));
    const open = r.openRate !== undefined && r.openRate >= t.openRateTxS && committed;
    rows.push(row(`open loop of ${n(t.openRateTxS)} tx/s: commit latency p50 < ${t.openP50Ms / 1000} s, p99 < ${t.openP99Ms / 1000} s`,
      open ? `${n(r.latencyP50Ms)} / ${n(r.latencyP99Ms)} ms at ${n(r.openRate!)} tx/s offered` : `run with --rate ${t.openRateTxS}`,
      open ? r.latencyP50Ms < t.openP50Ms && r.latencyP99Ms < t.openP99Ms : undefined));
  }
  if (r.members === 21) {
    rows.push(row(`idle block interval under ${t.n21IdleMs / 1000} s`, `${n(r.idleP50Ms)} ms`,
      Number.isFinite(r.idleP50Ms) ? r.idleP50Ms < t.n21IdleMs : undefined));
    rows.push(row(`${n(t.n21ThroughputTxS)} committed tx/s (members on machines of their own; here all share this one)`,
      `${n(r.throughputTxS)} tx/s`, r.throughputTxS >= t.n21ThroughputTxS));
  }
  if (r.members >= 7) {
    const share = r.deadThroughputTxS === undefined || !(r.throughputTxS > 0) ? undefined : r.deadThroughputTxS / r.throughputTxS;
    rows.push(row(`committed tx/s with one member dead within ${100 * t.deadShare} % of healthy`,
      share === undefined ? 'run with --dead-member' : `${n(r.deadThroughputTxS!)} tx/s (${Math.round(100 * share)} %)`, share === undefined ? undefined : share >= t.deadShare));
  }
  rows.push(row(`CPU per committed transaction per member at most ${t.perMemberTxUs} µs (10,000 tx/s on one core)`,
    r.perMemberTxUs === undefined ? 'nothing committed' : `${r.perMemberTxUs.toFixed(1)} µs`,
    r.perMemberTxUs === undefined ? undefined : r.perMemberTxUs <= t.perMemberTxUs));
  rows.push(row(`recovery after kill -9 of the leader's consensus under ${t.recoveryMs / 1000} s`,
    r.recoveryMs === undefined ? 'not measured in this run' : `${(r.recoveryMs / 1000).toFixed(1)} s`,
    r.recoveryMs === undefined ? undefined : r.recoveryMs < t.recoveryMs));
  rows.push(row('memory per member under 1.5 GB (its four services\' largest RSS, summed)',
    r.rssPerMemberMiB > 0 ? `${n(r.rssPerMemberMiB)} MiB` : 'not sampled', r.rssPerMemberMiB > 0 ? r.rssPerMemberMiB < t.rssPerMemberMiB : undefined));
  return rows;
}
