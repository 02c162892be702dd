// `btcfed devnet`: a whole federation on this machine — every service of every member its own
// process (store, signer, gateway, consensus), NATS too when none is running. Logs go to
// <dir>/<member>/logs/<service>.log; the terminal shows progress and the committed height.
// Ctrl-C stops everything cleanly (consensus first, stores last); a second Ctrl-C kills.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { consumeFreshMarker, isFreshSigner } from './fresh.ts';
import { parseConfText } from '#libs/config/index.ts';
import { dialTarget } from '#libs/rpc/index.ts';
import { memberName } from './init.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');
const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;
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
}

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
  const out = fs.createWriteStream(path.join(logDir, `${service}.log`), { flags: 'a' });
  // Own process group: the terminal's Ctrl-C reaches us, and we stop the services in order.
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stderr!.pipe(out, { end: false });
  const proc: Proc = { member, service, child, exited: false, ready: Promise.resolve({}) };
  const tail: string[] = [];
  proc.ready = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      out.write(line + '\n');
      tail.push(line);
      if (tail.length > 20) tail.shift();
      if (line.includes(`"${service} ready"`)) resolve(JSON.parse(line) as Record<string, unknown>);
    });
    // 'close' of stdout, not 'exit': the last lines (the reason it stopped) are read by then.
    child.on('exit', () => { proc.exited = true; });
    lines.on('close', () => {
      const why = fatalReason(tail);
      reject(new Error(`${member}/${service} exited with code ${child.exitCode} before it was ready${why ? `: ${why}` : ''}; see ${path.join(logDir, `${service}.log`)}`));
    });
  });
  proc.ready.catch(() => undefined);
  return proc;
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
  const bin = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((b) => fs.existsSync(b));
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
  restart(member: number, service: Service): Promise<void>;
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
  const stop = async () => {
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
    for (const service of SERVICES) {
      const group = Array.from({ length: o.members }, (_, i) => {
        const dir = path.join(o.dir, memberName(i));
        return startService(service, memberName(i), dir, argsFor(service, dir, o), o);
      });
      procs.push(...group);
      await Promise.all(group.map((p) => p.ready));
      if (!o.quiet) say(`  ${service.padEnd(9)} ready on ${o.members} member(s)`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const restart = async (i: number, service: Service): Promise<void> => {
    const name = memberName(i);
    const old = procs.findIndex((p) => p.member === name && p.service === service);
    if (old >= 0 && !procs[old]!.exited) {
      procs[old]!.child.kill('SIGTERM');
      await new Promise((r) => procs[old]!.child.once('exit', r));
    }
    const dir = path.join(o.dir, name);
    const p = startService(service, name, dir, argsFor(service, dir, o), o);
    if (old >= 0) procs[old] = p; else procs.push(p);
    await p.ready;
  };
  return { procs, restart, stop };
}
