// Durations as config files and the command line write them, and the rules for the two a
// committed parameter change may set. Imports nothing: the CLI parses its flags with it before it
// loads anything else.

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

const DURATION_PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h)/y;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** consensus.idle_heartbeat's rule (conf.yaml and a committed parameter change): why `ms` is refused, or undefined. */
export function idleHeartbeatProblem(ms: number): string | undefined {
  if (!Number.isFinite(ms) || ms < 0) return 'must be a duration of 0 or more';
  if (ms > 0 && (ms < 1000 || ms > 30_000)) return 'must be 0 (a block every view) or 1s to 30s (BtcfedNoCommit fires after a minute without a block)';
  return undefined;
}

/** The base view timeout a committed parameter change may set: long enough to sign in, short enough to notice a dead leader. */
export const BASE_TIMEOUT_RANGE_MS = { min: 100, max: 60_000 } as const;

export function baseTimeoutProblem(ms: number): string | undefined {
  if (!Number.isSafeInteger(ms) || ms < BASE_TIMEOUT_RANGE_MS.min || ms > BASE_TIMEOUT_RANGE_MS.max) return `must be ${BASE_TIMEOUT_RANGE_MS.min}ms to ${BASE_TIMEOUT_RANGE_MS.max / 1000}s`;
  return undefined;
}

/**
 * "500ms", "30s", "5m", "1h", and compounds as Go writes them ("1m30s", "1h2m3.5s"); a bare number
 * is seconds. Result in milliseconds.
 */
export function parseDuration(input: unknown): Parsed<number> {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) return { ok: false, reason: 'must be a non-negative number of seconds' };
    return { ok: true, value: Math.round(input * 1000) };
  }
  if (typeof input !== 'string') return { ok: false, reason: 'must be a duration such as "500ms", "30s", "5m" or a number of seconds' };
  const text = input.trim();
  const bad = { ok: false as const, reason: `"${input}" is not a duration such as "500ms", "30s", "1m30s", "1h"` };
  if (text === '') return bad;
  let ms = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const m = DURATION_PART.exec(text);
    if (!m) return bad;
    ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  }
  return { ok: true, value: Math.round(ms) };
}

