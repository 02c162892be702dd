// A real Prometheus server (Debian's `prometheus`) for tests: started on a free loopback port
// with a given configuration in a temp dir, queried over its HTTP API, stopped and removed.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './gateway.ts';

export const prometheusInstalled = (): boolean => {
  const r = spawnSync('prometheus', ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
};

export interface RunningPrometheus {
  url: string;
  /** An instant query's result vector. */
  query(q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** Loaded alerting rules, by name, with their health. */
  rules(): Promise<Array<{ name: string; health: string; lastError?: string; query: string }>>;
  stop(): Promise<void>;
}

/** Starts Prometheus with `config` (prometheus.yml text); `files` are written beside it. */
export async function startPrometheus(config: string, files: Record<string, string> = {}): Promise<RunningPrometheus> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-prom-'));
  await fs.writeFile(path.join(dir, 'prometheus.yml'), config);
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'], cwd: dir });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const api = async (p: string): Promise<unknown> => {
    const res = await fetch(`${url}${p}`);
    const body = await res.json() as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${p}: ${body.error ?? res.status}`);
    return body.data;
  };
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`prometheus exited (${proc.exitCode}): ${stderr}`);
    try { if ((await fetch(`${url}/-/ready`)).ok) break; } catch { /* not up yet */ }
    if (Date.now() - t0 > 30_000) throw new Error(`prometheus not ready in 30 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    query: async (q) => ((await api(`/api/v1/query?query=${encodeURIComponent(q)}`)) as { result: Array<{ metric: Record<string, string>; value: [number, string] }> }).result,
    rules: async () => ((await api('/api/v1/rules?type=alert')) as { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; query: string }> }> })
      .groups.flatMap((g) => g.rules),
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => { if (proc.exitCode !== null) r(null); else proc.once('exit', r); });
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
