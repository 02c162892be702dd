// A session with the inspector of a live Node process, opened without restarting it: SIGUSR1 opens
// Node's inspector (on 127.0.0.1, port 9229 unless the process was told otherwise), the Chrome
// DevTools protocol runs over its WebSocket, and closing the session closes the inspector again.
// Used to profile one process in its steady state (bench/attach-profile.ts), to have a service
// collect its garbage before a test reads what its heap holds (test/byzantine/measure.ts), and to
// write a heap snapshot of one that holds too much (BYZ_HEAP_SNAPSHOT). One
// session at a time on a port: the session checks that the process it reached is `pid`, and its
// close() resolves once the port is free again, so the next session (this process or another on
// the same port) never meets the inspector that is closing.

import { createWriteStream } from 'node:fs';

export interface InspectorSession {
  send(method: string, params?: object): Promise<unknown>;
  /** Calls `fn` with the params of each event `method` the process sends. */
  on(method: string, fn: (params: unknown) => void): void;
  /** Closes the session and the inspector; resolves once the port no longer answers (≤ 5 s). */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The inspector's WebSocket address on `port`, or undefined while nothing answers there. */
async function listed(port: number): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(2_000) });
    const list = (await res.json()) as { webSocketDebuggerUrl: string }[];
    return list[0]?.webSocketDebuggerUrl ?? '';
  } catch {
    return undefined;
  }
}

/**
 * Sends SIGUSR1 until the inspector answers. A signal that arrives while an inspector of the same
 * process is still closing is dropped (Node sees its inspector as open), so one signal is not
 * enough; a signal to an inspector already open does nothing.
 */
async function openInspector(pid: number, port: number): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (let k = 0; ; k++) {
    if (k % 10 === 0) process.kill(pid, 'SIGUSR1');
    const url = await listed(port);
    if (url) return url;
    if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${port} for process ${pid}`);
    await sleep(100);
  }
}

/**
 * Resolves once `port` refuses connections, or after `ms`. Only a refusal counts: an inspector
 * that is busy closing may fail a request in other ways while still open, and the next session's
 * SIGUSR1 must not reach an inspector that is still closing (it is dropped).
 */
async function portFreed(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      await fetch(`http://127.0.0.1:${port}/json/version`, { signal: AbortSignal.timeout(1_000) });
    } catch (err) {
      if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return;
    }
    await sleep(50);
  }
}

/** Opens the inspector of process `pid` and a session with it. */
export async function inspect(pid: number, port = 9229): Promise<InspectorSession> {
  const ws = new WebSocket(await openInspector(pid, port));
  const keepAlive = setInterval(() => {}, 1000); // an open WebSocket does not hold the event loop
  try {
    await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error('inspector socket failed')); });
    const session = sessionOver(ws, port, () => clearInterval(keepAlive));
    // Another process may hold the port (its inspector open): never act on it by mistake.
    const { result } = (await session.send('Runtime.evaluate', { expression: 'process.pid' })) as { result: { value: unknown } };
    if (result.value !== pid) throw new Error(`the inspector on 127.0.0.1:${port} is process ${String(result.value)}'s, not ${pid}'s`);
    return session;
  } catch (err) {
    // Whatever failed, nothing of the attempt is left holding this process's event loop.
    ws.close();
    clearInterval(keepAlive);
    throw err;
  }
}

function sessionOver(ws: WebSocket, port: number, release: () => void): InspectorSession {
  let next = 1;
  const pending = new Map<number, (r: unknown) => void>();
  const listeners = new Map<string, (params: unknown) => void>();
  let closed: Error | undefined;
  ws.onclose = (e) => {
    closed = new Error(`inspector socket closed (${e.code} ${e.reason})`);
    for (const r of pending.values()) r(closed);
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown; method?: string; params?: unknown };
    if (m.id !== undefined) pending.get(m.id)?.(m.result);
    else if (m.method !== undefined) listeners.get(m.method)?.(m.params);
  };
  const send = async (method: string, params: object = {}): Promise<unknown> => {
    if (closed) throw closed;
    const id = next++;
    const result = await new Promise<unknown>((resolve) => {
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
    pending.delete(id);
    if (result instanceof Error) throw result;
    return result;
  };
  const close = async () => {
    try {
      // Close the inspector again, from a timer of the process a little later rather than inside
      // this message. Ending it (process._debugEnd) while it dispatches the message, or right
      // after on a loaded machine while this session is still being torn down, crashed the
      // process with SIGSEGV in a few of every ten sessions opened one after the other (Node
      // 24.21; nodejs/node#18761 is the in-message case). With 250 ms, 160 sessions in a row on
      // two busy cores crashed nothing. inspector.close() waits for this socket, then frees the port.
      const end = "setTimeout(() => process.getBuiltinModule('node:inspector').close(), 250)";
      if (!closed) ws.send(JSON.stringify({ id: next++, method: 'Runtime.evaluate', params: { expression: end } }));
      ws.close();
      await portFreed(port, 5_000);
    } finally {
      release();
    }
  };
  return { send, on: (method, fn) => { listeners.set(method, fn); }, close };
}

/** Has process `pid` run a full garbage collection (V8's, through its inspector). */
export async function collectGarbage(pid: number, port = 9229): Promise<void> {
  const s = await inspect(pid, port);
  try {
    await s.send('HeapProfiler.collectGarbage');
  } finally {
    await s.close();
  }
}

/**
 * Writes a heap snapshot of process `pid` to `file` (after the full collection the snapshot runs
 * first): open it in Chrome's DevTools, Memory tab, to see what holds the heap and its buffers.
 */
export async function writeHeapSnapshot(pid: number, file: string, port = 9229): Promise<void> {
  const s = await inspect(pid, port);
  const out = createWriteStream(file);
  try {
    s.on('HeapProfiler.addHeapSnapshotChunk', (p) => { out.write((p as { chunk: string }).chunk); });
    await s.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  } finally {
    await s.close();
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
