// The driver tests' federation (local-federation.ts): four drivers in one process, their warnings
// kept for the tests that check what an operator is told, their stores removed after the tests.

import { after } from 'node:test';
import fs from 'node:fs/promises';
import { pino } from 'pino';
import { localFederation, type LocalFederationOptions, type Member } from './local-federation.ts';

export { CHAIN, N, dsa, keys, stopAll, toOutside, type Member } from './local-federation.ts';

/** Warnings and worse are kept (for the tests that check what an operator is told); TEST_LOG=level prints them too. */
export const warnings: Record<string, unknown>[] = [];
export const log = pino({ level: process.env.TEST_LOG ?? 'warn' }, {
  write: (line: string) => {
    const entry = JSON.parse(line) as Record<string, unknown>;
    if (Number(entry['level']) >= 40) warnings.push(entry);
    if (process.env.TEST_LOG) process.stderr.write(line);
  },
});
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true }))));

/**
 * `keyOf(i)`: whose key member i's signer holds (its own unless a test says otherwise); `dirOf(i)`:
 * its store's directory (a new one if undefined); `drop(from, to, frame)`: a frame the network loses;
 * `sign`: how member i's signer signs (LocalFederationOptions).
 */
export async function federation(keyOf?: (i: number) => number, dirOf?: (i: number) => string | undefined,
  drop?: (from: number, to: number, frame: Uint8Array) => boolean, sign?: LocalFederationOptions['sign']): Promise<{ members: Member[]; restart(i: number): Promise<void> }> {
  const f = await localFederation({ log, ...(keyOf ? { keyOf } : {}), ...(dirOf ? { dirOf } : {}), ...(drop ? { drop } : {}), ...(sign ? { sign } : {}) });
  dirs.push(...f.dirs);
  return f;
}

export async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
