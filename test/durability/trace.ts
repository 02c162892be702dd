// Reads an `strace -f -y -o FILE` trace into system calls in the order they started and
// finished, so a test can ask "did this write and that fsync finish before that send began?".
// Calls interrupted by another thread's (`<unfinished ...>` / `<... x resumed>`) are joined.

export interface Syscall {
  pid: number;
  name: string;
  fd: number;
  /** The fd's path as `-y` prints it (a file path, or `socket:[inode]`). */
  path: string | undefined;
  /** The call's arguments after the fd, as strace printed them (strings escaped). */
  data: string;
  /** The return value (bytes written for writes), or -1 while unknown. */
  bytes: number;
  /** Trace line where the call started, and where it returned. */
  start: number;
  end: number;
}

const START = /^(\d+)\s+(\w+)\((\d+)(?:<([^>]*)>)?(.*)$/;
const RESUMED = /^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$/;
const RESULT = /\)\s+=\s+(-?\d+)(?:\s.*)?$/;

/** Decodes strace's C-style escapes enough to match text the traced process wrote. */
function unescape(s: string): string {
  return s.replace(/\\n/g, '\n').replace(/\\t/g, '\t');
}

export function parseTrace(text: string): Syscall[] {
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
      call.end = i;
      call.bytes = Number(RESULT.exec(resumed[3]!)?.[1] ?? -1);
      continue;
    }
    const m = START.exec(line);
    if (!m) continue;
    const rest = m[5]!;
    const call: Syscall = { pid: Number(m[1]), name: m[2]!, fd: Number(m[3]), path: m[4], data: unescape(rest.replace(/^,\s*"/, '')),
      bytes: -1, start: i, end: -1 };
    out.push(call);
    if (rest.endsWith('<unfinished ...>')) {
      pending.set(call.pid, call);
      continue;
    }
    call.end = i;
    call.bytes = Number(RESULT.exec(rest)?.[1] ?? -1);
  }
  // A call that never returned (the process exited inside it) did not finish before anything.
  for (const c of out) if (c.end < 0) c.end = Number.POSITIVE_INFINITY;
  return out;
}
