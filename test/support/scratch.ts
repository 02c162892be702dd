// Scratch space for a test file: temporary dirs and small tmpfs mounts (a full disk on demand),
// removed when the file's tests end — also when one failed half-way or the process ends on an
// error (a tmpfs unmounted lazily: something a failed test left open may keep it busy) — and a
// logger whose JSON lines the test reads.

import { after } from 'node:test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface Scratch {
  /** A new empty dir. */
  tmp(): string;
  /** A new tmpfs of `size` (mount's size=, e.g. 512k) mounted on a new dir; undefined where it cannot be mounted (not root). */
  tmpfs(size: string): string | undefined;
}

export function scratch(prefix: string): Scratch {
  const dirs: string[] = [];
  const mounts: string[] = [];
  const cleanUp = () => {
    for (const m of mounts.splice(0)) { try { execFileSync('umount', ['-l', m], { stdio: 'ignore' }); } catch { /* not mounted */ } }
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  };
  after(cleanUp);
  process.once('exit', cleanUp);
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  return {
    tmp,
    tmpfs(size) {
      const mnt = tmp();
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { stdio: 'ignore' });
      } catch {
        return undefined;
      }
      mounts.push(mnt);
      return mnt;
    },
  };
}

/** A logger at debug whose lines (parsed) the test reads. */
export function captureLog(): { log: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: pino({ level: 'debug' }, sink), lines };
}
