// A session with the inspector of a live Node process, opened without restarting it: SIGUSR1 opens
// Node's inspector (on 127.0.0.1, port 9229 unless the process was told otherwise), the Chrome
// DevTools protocol runs over its WebSocket, and closing the session closes the inspector again.
// Used to profile one process in its steady state (bench/attach-profile.ts), to have a service
// collect its garbage before a test reads what its heap holds (test/byzantine/measure.ts), and to
// write a heap snapshot of one that holds too much (BYZ_HEAP_SNAPSHOT). One
// session at a time on a port: the session checks that the process it reached is `pid`.

import { createWriteStream } from 'node:fs';

export interface InspectorSession {
  send(method: string, params?: object): Promise<unknown>;
  /** Calls `fn` with the params of each event `method` the process sends. */
  on(method: string, fn: (params: unknown) => void): void;
  close(): void;
}

async function inspectorUrl(port: number, deadline: number): Promise<string> {
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/list`);
      const list = (await res.json()) as { webSocketDebuggerUrl: string }[];
      if (list[0]) return list[0].webSocketDebuggerUrl;
    } catch { /* not open yet */ }
    if (Date.now() > deadline) throw new Error(`no inspector on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Opens the inspector of process `pid` and a session with it. */
export async function inspect(pid: number, port = 9229): Promise<InspectorSession> {
  process.kill(pid, 'SIGUSR1');
  const keepAlive = setInterval(() => {}, 1000); // an open WebSocket does not hold the event loop
  const ws = new WebSocket(await inspectorUrl(port, Date.now() + 10_000));
  try {
    await new Promise<void>((resolve, reject) => { ws.onopen = () => resolve(); ws.onerror = () => reject(new Error('inspector socket failed')); });
  } catch (err) {
    clearInterval(keepAlive);
    throw err;
  }
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
  const close = () => {
    // Close the inspector again; it ends the session before it answers, so nothing is awaited.
    if (!closed) ws.send(JSON.stringify({ id: next++, method: 'Runtime.evaluate', params: { expression: 'process._debugEnd?.()' } }));
    ws.close();
    clearInterval(keepAlive);
  };
  try {
    // Another process may hold the port (its inspector open): never act on it by mistake.
    const { result } = (await send('Runtime.evaluate', { expression: 'process.pid' })) as { result: { value: unknown } };
    if (result.value !== pid) throw new Error(`the inspector on 127.0.0.1:${port} is process ${String(result.value)}'s, not ${pid}'s`);
  } catch (err) {
    ws.close();
    clearInterval(keepAlive);
    throw err;
  }
  return { send, on: (method, fn) => { listeners.set(method, fn); }, close };
}

/** Has process `pid` run a full garbage collection (V8's, through its inspector). */
export async function collectGarbage(pid: number, port = 9229): Promise<void> {
  const s = await inspect(pid, port);
  try {
    await s.send('HeapProfiler.collectGarbage');
  } finally {
    s.close();
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
    s.close();
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
