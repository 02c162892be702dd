// Noticing that a member's files changed: a directory watch (editors replace files by
// rename, so the directory, not the file, is watched), a slow stat poll as a safety net
// for filesystems where watches miss events, and SIGHUP. Every source just asks the
// MemberConfig to reload; it decides whether anything really changed (checksums) and
// coalesces bursts.

import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { CONF_FILE, PEERS_FILE } from './load.ts';
import type { Trigger } from './events.ts';

export interface WatchOptions {
  dataDir: string;
  /** Quiet time after the last file event before reloading (editors write in steps). */
  debounceMs?: number;
  pollMs?: number;
}

export interface Watcher { close(): void }

const WATCHED = new Set([CONF_FILE, PEERS_FILE]);

function stamp(file: string): string {
  try {
    const s = fs.statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export function watchFiles(opts: WatchOptions, reload: (t: Trigger) => void, log: Logger): Watcher {
  const debounceMs = opts.debounceMs ?? 50;
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(() => reload('file_change'), debounceMs);
  };

  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(opts.dataDir, { persistent: false }, (_event, name) => {
      if (name === null || WATCHED.has(name.toString())) fire();
    });
    watcher.on('error', (err) => log.warn({ err: err.message }, 'directory watch failed; the poll still notices changes'));
  } catch (err) {
    log.warn({ err: (err as Error).message, dir: opts.dataDir }, 'cannot watch the data dir; relying on the poll');
  }

  const files = [...WATCHED].map((f) => path.join(opts.dataDir, f));
  let last = files.map(stamp).join('|');
  const poll = setInterval(() => {
    const now = files.map(stamp).join('|');
    if (now !== last) {
      last = now;
      fire();
    }
  }, opts.pollMs ?? 1000);
  poll.unref();

  return {
    close() {
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
  };
}

/** SIGHUP → reload. Many signals in a burst coalesce inside MemberConfig.requestReload. */
export function onHangup(reload: (t: Trigger) => void): () => void {
  const handler = () => reload('signal');
  process.on('SIGHUP', handler);
  return () => process.off('SIGHUP', handler);
}
