// `btcfed devnet`: a whole federation on this machine — every service of every member its own
// process (store, signer, gateway, consensus), NATS too when none is running. Logs go to
// <dir>/<member>/logs/<service>.log, written by the service itself; its pid is in
// <dir>/<member>/run/<service>.pid. The terminal shows progress and the committed height. With
// `supervise`, a service that exits is started again (kill one to restart it).
// Ctrl-C stops everything cleanly (consensus first, stores last); a second Ctrl-C kills.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { consumeFreshMarker, isFreshSigner } from './fresh.ts';
import { parseConfText } from '#libs/config/index.ts';
import { dialTarget } from '#libs/rpc/index.ts';
import { natsServerBinary } from '#libs/events/nats-binary.ts';
import { memberName, observerName } from './init.ts';
import { NODE_FLAGS, serviceEnv } from '#libs/service/node-flags.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;
export type Service = (typeof SERVICES)[number];

export interface DevnetOptions {
  /** Holds the member dirs m0, m1, …, each made by btcfed init or btcfed member init + join. */
  dir: string;
  members: number;
  /** Unused since the addresses come from each member's conf.yaml; kept for callers. */
  basePort: number;
  /** Passed to every service as --nats (wins over conf.yaml's nats section). */
  natsUrl: string;
  quiet?: boolean;
  /** Where member i's signer dir is (as on its own host); default <dir>/m<i>/signer. */
  signerDirOf?: (i: number) => string;
  /**
   * Start a service again when it exits while the federation runs (as systemd's
   * Restart=on-failure: 1 s later; after 5 starts within 60 s it is left down, said once).
   * Off for tests, which kill services on purpose and restart them themselves.
   */
  supervise?: boolean;
  /** Observers o0, o1, … (dirs made by btcfed init --observers): store, gateway and consensus each, no signer. */
  observers?: number;
}

const RESTART_DELAY_MS = 1000;
const RESTART_BURST = 5;
const RESTART_WINDOW_MS = 60_000;

interface Proc { member: string; service: Service; child: ChildProcess; ready: Promise<Record<string, unknown>>; exited: boolean }

/** The reason a service gave for not starting: its last fatal log line, if any. */
function fatalReason(lines: readonly string[]): string | undefined {
  for (const line of [...lines].reverse()) {
    try {
      const l = JSON.parse(line) as { level?: number; msg?: string };
      if ((l.level ?? 0) >= 60 && l.msg) return l.msg;
    } catch { /* not JSON */ }
  }
  return undefined;
}

/** The member's store as its gateway and consensus dial it: services.store.listen of its conf.yaml (as the systemd units' BTCFED_STORE). */
function storeAddress(dir: string): string {
  const file = path.join(dir, 'conf.yaml');
  return dialTarget(parseConfText(fs.readFileSync(file, 'utf8'), file).services.store.listen);
}

function argsFor(service: Service, dir: string, o: DevnetOptions): string[] {
  switch (service) {
    case 'store': return ['services/store/main.ts', '--data-dir', dir, '--nats', o.natsUrl];
    case 'signer': {
      // --init only on the first start after btcfed init made this signer (cli/fresh.ts): a state
      // file lost later must stop the signer, never be silently recreated at zero marks.
      const signerDir = signerDirOf(o, dir);
      return ['services/signer/main.ts', 'run', '--data-dir', signerDir, ...(isFreshSigner(signerDir) ? ['--init'] : [])];
    }
    case 'gateway': return ['services/gateway/main.ts', '--store', storeAddress(dir), '--data-dir', dir, '--nats', o.natsUrl];
    case 'consensus': return ['services/consensus/main.ts', '--store', storeAddress(dir), '--data-dir', dir, '--nats', o.natsUrl];
  }
}

function signerDirOf(o: DevnetOptions, dir: string): string {
  const i = Number(/^m(\d+)$/.exec(path.basename(dir))?.[1] ?? 0);
  return o.signerDirOf ? o.signerDirOf(i) : path.join(dir, 'signer');
}

/** Starts a service; a signer's first start, once ready, uses up init's one-time --init permission. */
function startService(service: Service, member: string, dir: string, args: string[], o: DevnetOptions): Proc {
  const p = start(service, member, dir, args);
  if (service === 'signer' && args.includes('--init')) {
    p.ready = p.ready.then(async (line) => { await consumeFreshMarker(signerDirOf(o, dir)); return line; });
    p.ready.catch(() => undefined);
  }
  return p;
}

function start(service: Service, member: string, dir: string, args: string[]): Proc {
  const logDir = path.join(dir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${service}.log`);
  // The service writes its log itself (the file is its stdout and stderr): if this parent dies,
  // the members keep running and keep logging. We read the file to see it become ready.
  const fd = fs.openSync(logFile, 'a');
  const from = fs.fstatSync(fd).size;
  // Own process group: the terminal's Ctrl-C reaches us, and we stop the services in order.
  const child = spawn(process.execPath, [...NODE_FLAGS, ...args], { cwd: ROOT, env: serviceEnv(), stdio: ['ignore', fd, fd], detached: true });
  fs.closeSync(fd);
  const pidFile = path.join(dir, 'run', `${service}.pid`);
  if (child.pid !== undefined) {
    fs.mkdirSync(path.dirname(pidFile), { recursive: true });
    fs.writeFileSync(pidFile, `${child.pid}\n`);
  }
  const proc: Proc = { member, service, child, exited: false, ready: Promise.resolve({}) };
  const tail: string[] = [];
  proc.ready = new Promise((resolve, reject) => {
    const log = followLog(logFile, from, (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (line.includes(`"${service} ready"`)) {
        log.stop();
        resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
    child.on('exit', () => {
      proc.exited = true;
      try { if (fs.readFileSync(pidFile, 'utf8').trim() === String(child.pid)) fs.rmSync(pidFile); } catch { /* gone already */ }
      // Its last lines (the reason it stopped) are in the file by now.
      log.drain();
      log.stop();
      const why = fatalReason(tail);
      reject(new Error(`${member}/${service} exited with code ${child.exitCode} before it was ready${why ? `: ${why}` : ''}; see ${logFile}`));
    });
  });
  proc.ready.catch(() => undefined);
  return proc;
}

/** Calls `onLine` with each complete line appended to `file` after byte `from`, polling every 50 ms until stopped. */
function followLog(file: string, from: number, onLine: (line: string) => void): { drain(): void; stop(): void } {
  let offset = from;
  let partial = '';
  let stopped = false;
  const drain = () => {
    if (stopped) return;
    let fd: number;
    try { fd = fs.openSync(file, 'r'); } catch { return; }
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (let n = fs.readSync(fd, buf, 0, buf.length, offset); n > 0; n = fs.readSync(fd, buf, 0, buf.length, offset)) {
        offset += n;
        const lines = (partial + buf.subarray(0, n).toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (!stopped) onLine(line);
      }
    } finally {
      fs.closeSync(fd);
    }
  };
  const timer = setInterval(drain, 50);
  return { drain, stop: () => { stopped = true; clearInterval(timer); } };
}

async function natsUp(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port || 4222), u.hostname, () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function ensureNats(o: DevnetOptions, say: (s: string) => void): Promise<ChildProcess | undefined> {
  if (await natsUp(o.natsUrl)) return undefined;
  const bin = natsServerBinary();
  if (!bin) throw new Error(`no NATS at ${o.natsUrl} and no nats-server installed (run: bash scripts/ensure-nats.sh)`);
  const u = new URL(o.natsUrl);
  const store = path.join(o.dir, 'nats');
  fs.mkdirSync(store, { recursive: true });
  const child = spawn(bin, ['-a', u.hostname, '-p', u.port || '4222', '-js', '-sd', store], { stdio: 'ignore', detached: true });
  for (let i = 0; i < 50 && !(await natsUp(o.natsUrl)); i++) await new Promise((r) => setTimeout(r, 100));
  say(`started nats-server on ${o.natsUrl} (JetStream in ${store})`);
  return child;
}

export interface Devnet {
  procs: Proc[];
  /** Starts one service of one member again (after it died or was killed) and waits until it is ready. */
  restart(member: number | string, service: Service): Promise<void>;
  stop(): Promise<void>;
}

export async function runDevnet(o: DevnetOptions, say: (s: string) => void = console.log): Promise<Devnet> {
  const nats = await ensureNats(o, say);
  const procs: Proc[] = [];
  // Children live in their own process groups; if we die without stopping them, take them along.
  process.once('exit', () => {
    for (const p of procs) if (!p.exited) p.child.kill('SIGKILL');
    nats?.kill('SIGKILL');
  });
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const service of [...SERVICES].reverse()) {
      const group = procs.filter((p) => p.service === service && !p.exited);
      await Promise.all(group.map((p) => new Promise<void>((resolve) => {
        const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
        p.child.once('exit', () => { clearTimeout(t); resolve(); });
        p.child.kill('SIGTERM');
      })));
    }
    nats?.kill('SIGTERM');
  };
  try {
    const observers = Array.from({ length: o.observers ?? 0 }, (_, k) => observerName(k));
    for (const service of SERVICES) {
      const names = [...Array.from({ length: o.members }, (_, i) => memberName(i)), ...(service === 'signer' ? [] : observers)];
      const group = names.map((name) => {
        const dir = path.join(o.dir, name);
        return startService(service, name, dir, argsFor(service, dir, o), o);
      });
      procs.push(...group);
      await Promise.all(group.map((p) => p.ready));
      if (!o.quiet) say(`  ${service.padEnd(9)} ready on ${o.members} member(s)${observers.length > 0 && service !== 'signer' ? ` and ${observers.length} observer(s)` : ''}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const restart = async (member: number | string, service: Service): Promise<void> => {
    const name = typeof member === 'number' ? memberName(member) : member;
    const old = procs.findIndex((p) => p.member === name && p.service === service);
    if (old >= 0 && !procs[old]!.exited) {
      procs[old]!.child.kill('SIGTERM');
      await new Promise((r) => procs[old]!.child.once('exit', r));
    }
    const dir = path.join(o.dir, name);
    const p = startService(service, name, dir, argsFor(service, dir, o), o);
    if (old >= 0) procs[old] = p; else procs.push(p);
    if (o.supervise) supervise(p);
    await p.ready;
  };
  const starts = new Map<string, number[]>();
  const supervise = (p: Proc): void => {
    p.child.once('exit', (code, signal) => {
      if (stopping) return;
      const key = `${p.member}/${p.service}`;
      const now = Date.now();
      const recent = (starts.get(key) ?? []).filter((t) => now - t < RESTART_WINDOW_MS);
      if (recent.length >= RESTART_BURST) {
        say(`!! ${key} exited (${signal ?? `code ${code}`}) and was started ${RESTART_BURST} times within ${RESTART_WINDOW_MS / 1000} s: left down; see ${path.join(o.dir, p.member, 'logs', `${p.service}.log`)}`);
        return;
      }
      starts.set(key, [...recent, now]);
      say(`!! ${key} exited (${signal ?? `code ${code}`}); starting it again in ${RESTART_DELAY_MS / 1000} s`);
      setTimeout(() => {
        if (stopping) return;
        restart(p.member, p.service).then(
          () => say(`   ${key} is back`),
          (err: unknown) => say(`!! ${key} did not start: ${err instanceof Error ? err.message : String(err)}`));
      }, RESTART_DELAY_MS);
    });
  };
  if (o.supervise) for (const p of procs) supervise(p);
  return { procs, restart, stop };
}
