// Polling for a condition in tests of real processes: `fn` is tried every `everyMs` (200 ms) until
// it gives a value (not undefined or false) or `ms` pass; a timeout names what was awaited and the
// last error. A poll that reads much (ListBlocks of 100 costs 101 of a client's 200 read units a
// second) is spaced wider, so it never meets the API's rate limit.

export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 60_000, everyMs = 200): Promise<T> {
  const t0 = Date.now();
  let lastErr: unknown;
  while (Date.now() - t0 < ms) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) { lastErr = err; }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}
