// A clock the tests move by hand (a Clock, ports.ts): timers fire in time order on advance().
// Test support only.

import type { Clock } from './ports.ts';

export function manualClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  const timers = new Set<{ at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const t = { at: now + ms, fn };
      timers.add(t);
      return { cancel: () => { timers.delete(t); } };
    },
    advance(ms) {
      now += ms;
      for (const t of [...timers].sort((a, b) => a.at - b.at)) {
        if (t.at > now || !timers.has(t)) continue;
        timers.delete(t);
        t.fn();
      }
    },
  };
}
