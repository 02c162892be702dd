// Durable file operations: atomic replace (temp file, fsync, rename, fsync of
// the directory), timestamped backups of files we refuse, and the data-dir lock that keeps a
// second store process from writing the same files. Nothing here ever deletes a user's file:
// a file we cannot use is renamed or copied aside, never overwritten in place.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { FedError } from '#libs/errors/index.ts';
import { sha256Hex } from '#libs/crypto/index.ts';

export { sha256Hex };

export interface AtomicWriteOptions {
  mode?: number;
  /**
   * Called after the new content is durable in the temp file and immediately before the rename,
   * synchronously, so nothing else in this process runs between the check and the rename (the
   * window in which another writer's rename could be overwritten unseen is a few microseconds).
   * When it returns false the write is abandoned (temp removed, target untouched) and false returned.
   */
  beforeRename?: () => boolean;
}

/** Writes `data` to `file` so that a crash leaves either the old or the new content, never a mix. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<boolean> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, 'wx', opts.mode ?? 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (opts.beforeRename) {
      if (!opts.beforeRename()) {
        await fs.rm(tmp, { force: true });
        return false;
      }
      renameSync(tmp, file);
    } else {
      await fs.rename(tmp, file);
    }
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
  return true;
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** `peers.yaml` → `peers.yaml.corrupt-20261121T054112Z` (+ a counter when that exists). */
function backupName(file: string, kind: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${file}.${kind}-${stamp}`;
}

async function freeName(candidate: string): Promise<string> {
  for (let i = 0; ; i++) {
    const name = i === 0 ? candidate : `${candidate}.${i}`;
    try {
      await fs.access(name);
    } catch {
      return name;
    }
  }
}

/** Renames a file we refuse out of the way; returns where it went. */
export async function moveAside(file: string, kind: string, now = new Date()): Promise<string> {
  const target = await freeName(backupName(file, kind, now));
  await fs.rename(file, target);
  await fsyncDir(path.dirname(file));
  return target;
}

/** Copies a file we refuse aside (the original stays where its owner put it). */
export async function copyAside(file: string, content: string | Uint8Array, kind: string, now = new Date()): Promise<string> {
  const target = await freeName(backupName(file, kind, now));
  await writeFileAtomic(target, content);
  return target;
}

/** The checksum of a file's content, or MISSING (synchronous: see AtomicWriteOptions.beforeRename). */
export const MISSING = 'missing';
export function fileShaSync(file: string): string {
  try {
    return sha256Hex(readFileSync(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return MISSING;
    throw err;
  }
}

export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface DirLock {
  readonly file: string;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dir>/<name>.lock` for this process (O_EXCL). A lock left by a process that no longer
 * exists is taken over; one held by a live process is refused with STORE_LOCKED.
 */
export async function lockDir(dir: string, name: string): Promise<DirLock> {
  const file = path.join(dir, `${name}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await fs.open(file, 'wx', 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.sync();
      await handle.close();
      await fsyncDir(dir);
      return { file, release: () => fs.rm(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt((await readIfExists(file)) ?? '', 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new FedError('STORE_LOCKED', `${file} is held by running process ${pid}: another store uses this data dir`, { file, pid });
      }
      await fs.rm(file, { force: true });
    }
  }
  throw new FedError('STORE_LOCKED', `could not take ${file}`, { file });
}

/** Runs tasks one at a time, in order: the in-process half of "locked against concurrent writers". */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(task, task);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
