// Running a service as a real child process in tests: spawn it with the same Node, read
// its JSON log lines, wait for a given line, stop it (SIGTERM, then SIGKILL).

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface LogLine { level: number; msg: string; [key: string]: unknown }

export interface ServiceProcess {
  readonly proc: ChildProcess;
  readonly lines: LogLine[];
  /** Resolves with the first line (past or future) that matches; rejects on exit or timeout. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  stderr(): string;
}

export function startService(script: string, args: string[], env: NodeJS.ProcessEnv = {}): ServiceProcess {
  const proc = spawn(process.execPath, [path.join(ROOT, script), ...args], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      lines.push({ level: 30, msg: text });
    }
    for (const w of waiters) w();
  });
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  void exited.then(() => { for (const w of waiters) w(); });
  let dead = false;
  void exited.then(() => { dead = true; });

  const waitFor = (match: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      let seen = 0;
      const check = () => {
        for (; seen < lines.length; seen++) {
          if (match(lines[seen]!)) { done(); resolve(lines[seen]!); return; }
        }
        if (dead) { done(); reject(new Error(`process exited before the line appeared; stderr: ${err}; last lines: ${JSON.stringify(lines.slice(-5))}`)); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`timed out waiting for a log line; last lines: ${JSON.stringify(lines.slice(-5))}; stderr: ${err}`)); }, timeoutMs);
      const done = () => { clearTimeout(timer); waiters.delete(check); };
      waiters.add(check);
      check();
    });

  return {
    proc, lines, waitFor, exited,
    stderr: () => err,
    async stop(signal = 'SIGTERM') {
      if (dead) return exited;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
