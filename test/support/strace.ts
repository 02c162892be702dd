// Runs a real process under strace and reads its trace into system calls in the order they
// started and finished, so a test can prove an order on disk rather than assert it: "the state
// file's write, its fsync, the rename and the directory's fsync all finished before the reply's
// bytes went out on the socket".
//
// Usage:
//   const t = await startTraced({ out: '/tmp/x.trace', argv: [process.execPath, 'services/signer/main.ts', 'run', …] });
//   … drive the process (its stdout/stderr are t.child's) …
//   await t.stop();                                    // SIGTERM, waits for exit
//   const calls = parseStrace(await fs.readFile('/tmp/x.trace', 'utf8'));
//   const fsync = firstAfter(calls, write, (c) => c.name === 'fsync' && c.fd === write.fd);
//   assert.ok(fsync && fsync.end < send.start);
//
// The trace is taken with -f (threads: libuv runs file I/O on its pool), -y (fds printed with
// their paths: `3</data/state.json>`, `17<TCPv6:[…]>` or `socket:[…]`), -qq, and long strings
// (-s) so a test can find its own bytes in a write. Calls interrupted by another thread's line
// (`<unfinished ...>` / `<... x resumed>`) are joined back into one.
// `requireStrace()` fails (never skips) when strace is missing: scripts/ensure-tools.sh installs it.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface Syscall {
  pid: number;
  name: string;
  /** The first argument when it is an fd (`3<…>` or `AT_FDCWD<…>` is -100), else NaN. */
  fd: number;
  /** The first argument's path as -y prints it (a file, a directory, `socket:[inode]`, `TCP:[…]`). */
  path: string | undefined;
  /** Every quoted string among the arguments (paths of openat/rename, data of writes), unescaped. */
  strings: string[];
  /** The raw arguments after the first one, as strace printed them. */
  data: string;
  /** The return value (bytes for writes, the new fd for openat), or -1 while unknown / on error. */
  ret: number;
  /** For openat: the path of the returned fd (with -y, `= 5</path>`). */
  retPath: string | undefined;
  /** Trace line where the call started, and where it returned (Infinity: it never returned). */
  start: number;
  end: number;
}

/** The system calls the durability proofs look at (file writes, flushes, renames, sends). */
export const DURABILITY_CALLS = ['write', 'pwrite64', 'writev', 'pwritev', 'pwritev2', 'fsync', 'fdatasync', 'rename',
  'renameat', 'renameat2', 'openat', 'sendmsg', 'sendto'] as const;

export function requireStrace(): void {
  assert.equal(spawnSync('strace', ['-V']).status, 0, 'strace is not installed: run scripts/ensure-tools.sh (the README\'s set-up)');
}

export interface Traced {
  child: ChildProcess;
  /** SIGTERM (or `signal`), then waits for strace (and so the traced tree) to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Starts `argv` under strace writing to `out`; `extra` adds options (e.g. `-e inject=…`). */
export function startTraced(opts: { out: string; argv: string[]; calls?: readonly string[]; extra?: string[]; cwd?: string; env?: NodeJS.ProcessEnv }): Traced {
  const calls = opts.calls ?? DURABILITY_CALLS;
  const child = spawn('strace', ['-f', '-y', '-qq', '-s', '65536', '-o', opts.out, '-e', `trace=${calls.join(',')}`, ...(opts.extra ?? []),
    ...opts.argv], { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    child, exited,
    async stop(signal = 'SIGTERM') {
      // strace blocks fatal signals while it traces a program it started (-o FILE PROG), so the
      // signal goes to the traced process itself; strace exits after it.
      if (child.exitCode === null && child.pid !== undefined) {
        const kids = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '');
        for (const pid of kids.trim().split(/\s+/).filter(Boolean)) process.kill(Number(pid), signal);
      }
      return exited;
    },
  };
}

const LINE = /^(\d+)\s+(\w+)\((.*)$/;
const RESUMED = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$/;
const RESULT = /\)\s+=\s+(-?\d+)(?:<([^>]*)>)?(?:\s.*)?$/;
const FIRST_FD = /^(\d+|AT_FDCWD)(?:<([^>]*)>)?/;
const STRING = /"((?:[^"\\]|\\.)*)"/g;

/** Decodes strace's C-style escapes enough to match text the traced process wrote. */
function unescape(s: string): string {
  return s.replace(/\\(x[0-9a-f]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ({ n: '\n', t: '\t', r: '\r', v: '\v', f: '\f', a: '\x07', b: '\b', '"': '"', '\\': '\\' } as Record<string, string>)[e] ?? e;
  });
}

function finish(call: Syscall, tail: string, line: number): void {
  call.end = line;
  const r = RESULT.exec(tail);
  call.ret = r ? Number(r[1]) : -1;
  call.retPath = r?.[2];
}

export function parseStrace(text: string): Syscall[] {
  const out: Syscall[] = [];
  const pending = new Map<number, Syscall>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const resumed = RESUMED.exec(line);
    if (resumed) {
      const call = pending.get(Number(resumed[1]));
      if (!call) continue;
      pending.delete(call.pid);
      call.strings.push(...[...resumed[3]!.matchAll(STRING)].map((m) => unescape(m[1]!)));
      finish(call, resumed[3]!, i);
      continue;
    }
    const m = LINE.exec(line);
    if (!m) continue;
    const args = m[3]!;
    const first = FIRST_FD.exec(args);
    const call: Syscall = {
      pid: Number(m[1]), name: m[2]!,
      fd: first ? (first[1] === 'AT_FDCWD' ? -100 : Number(first[1])) : Number.NaN,
      path: first?.[2],
      strings: [...args.matchAll(STRING)].map((s) => unescape(s[1]!)),
      data: unescape((first ? args.slice(first[0].length) : args).replace(/^,\s*"/, '')),
      ret: -1, retPath: undefined, start: i, end: Number.POSITIVE_INFINITY,
    };
    out.push(call);
    if (args.endsWith('<unfinished ...>')) pending.set(call.pid, call);
    else finish(call, args, i);
  }
  return out;
}

/** The first call after `after` (started once it had finished) that matches. */
export function firstAfter(calls: readonly Syscall[], after: Syscall | undefined, match: (c: Syscall) => boolean): Syscall | undefined {
  const from = after?.end ?? -1;
  return calls.find((c) => c.start > from && match(c));
}

/** A socket fd as -y prints it (`socket:[…]`, `TCP:[…]`, `TCPv6:[…]`, `UNIX-STREAM:[…]`). */
export function isSocket(c: Syscall): boolean {
  return c.path !== undefined && /^(socket|TCP|TCPv6|UDP|UDPv6|UNIX|UNIX-STREAM|NETLINK)[:]/.test(c.path);
}

export const isWrite = (c: Syscall): boolean => /^(p?write(v|v2|64)?|sendmsg|sendto)$/.test(c.name) && c.ret > 0;
export const isFlush = (c: Syscall): boolean => (c.name === 'fsync' || c.name === 'fdatasync') && c.ret === 0;
export const isRename = (c: Syscall): boolean => c.name.startsWith('rename') && c.ret === 0;
