// Scratch space for a test file: temporary dirs and small tmpfs mounts (a full disk on demand),
// removed when the file's tests end — also when one failed half-way or the process ends on an
// error (a tmpfs unmounted lazily: something a failed test left open may keep it busy) — and a
// logger whose JSON lines the test reads.

import { after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
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

/**
 * Runs `fn` on a new tmpfs of `size` (a disk that fills on demand), or skips the test where none
 * can be mounted (not root). Fails the test when a promise rejection was left unhandled meanwhile:
 * in a service it would end the process.
 */
export async function onSmallDisk(t: TestContext, where: Scratch, size: string, fn: (mnt: string) => Promise<void>): Promise<void> {
  const mnt = where.tmpfs(size);
  if (!mnt) {
    t.skip('cannot mount a tmpfs here (needs root)');
    return;
  }
  const unhandled: unknown[] = [];
  const onUnhandled = (r: unknown) => { unhandled.push(r); };
  process.on('unhandledRejection', onUnhandled);
  try {
    await fn(mnt);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, [], 'no promise rejection left unhandled (it would end the service)');
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
}
