// Processes on the test bed's hosts: each started inside its host's namespace with
// `ip netns exec` (which execs, so the child's pid is the program's own and signals reach it),
// its stdout and stderr appended to <workDir>/logs/<name>.log (m0.consensus.log, m0.signer.log, nats.nats1.log …), readiness from a log line or
// a probe. The runner remembers every exit and whether the test caused it: "no service exited on
// its own" is one of the checks.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Host, Testbed } from './netns.ts';
import { serviceEnv } from '#libs/service/node-flags.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface ServiceSpec {
  host: Host;
  /** Unique per runner, e.g. "m0.consensus". */
  name: string;
  cmd: string;
  /** Called on every start, so a restart can differ from the first start (a signer's --init). */
  args: () => string[];
  /** A stdout line that means "ready" (substring), or a probe polled until true. */
  readyLine?: string;
  probe?: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** Called once the first start was ready (e.g. a signer's one-time --init permission is used up). */
  onReady?: () => Promise<void> | void;
}

export interface ExitRecord { service: string; host: string; at: number; code: number | null; signal: string | null; expected: boolean; tail: string[] }

export class Service {
  readonly spec: ServiceSpec;
  readonly logFile: string;
  child: ChildProcess | undefined;
  /** Set while the test means it to be down or it is being killed by the test. */
  expectDown = false;
  paused = false;
  starts = 0;
  readonly tail: string[] = [];
  #exited: Promise<void> = Promise.resolve();

  constructor(spec: ServiceSpec, logDir: string) {
    this.spec = spec;
    this.logFile = path.join(logDir, `${spec.name}.log`);
  }

  get name(): string { return this.spec.name; }
  get running(): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null; }
  get pid(): number | undefined { return this.running ? this.child!.pid : undefined; }
  /** Resolves when the current child has exited. */
  get exited(): Promise<void> { return this.#exited; }
  setExited(p: Promise<void>): void { this.#exited = p; }
}

export class Runner {
  readonly services = new Map<string, Service>();
  readonly exits: ExitRecord[] = [];
  readonly #tb: Testbed;
  readonly #logDir: string;
  #closing = false;
  /** Called on every exit the test did not cause (after it is recorded). */
  onUnexpectedExit: ((s: Service, e: ExitRecord) => void) | undefined;

  constructor(tb: Testbed) {
    this.#tb = tb;
    this.#logDir = path.join(tb.workDir, 'logs');
    fs.mkdirSync(this.#logDir, { recursive: true });
    tb.onDestroy(() => this.killAllSync());
  }

  /** Starts a new service and waits until it is ready. */
  async start(spec: ServiceSpec): Promise<Service> {
    if (this.services.has(spec.name)) throw new Error(`runner: ${spec.name} already exists`);
    const s = new Service(spec, this.#logDir);
    this.services.set(spec.name, s);
    await this.#launch(s);
    await spec.onReady?.();
    return s;
  }

  get(name: string): Service {
    const s = this.services.get(name);
    if (!s) throw new Error(`runner: no service ${name} (${[...this.services.keys()].join(', ')})`);
    return s;
  }

  onHost(host: Host): Service[] {
    return [...this.services.values()].filter((s) => s.spec.host.name === host.name);
  }

  #launch(s: Service): Promise<void> {
    if (s.running) throw new Error(`runner: ${s.name} is already running (pid ${s.pid})`);
    const [cmd, args] = this.#tb.execArgv(s.spec.host, s.spec.cmd, s.spec.args());
    const out = fs.createWriteStream(s.logFile, { flags: 'a' });
    out.write(`\n=== testbed: start #${s.starts + 1} of ${s.name} on ${s.spec.host.name} (${s.spec.host.addr}) at ${new Date().toISOString()}\n`);
    // Own process group: a Ctrl-C in the terminal reaches the test, which stops everything itself.
    const child = spawn(cmd, args, { cwd: ROOT, env: serviceEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    s.child = child;
    s.starts++;
    s.expectDown = false;
    s.paused = false;
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
    let isReady = false;
    const onLine = (line: string) => {
      out.write(line + '\n');
      s.tail.push(line);
      if (s.tail.length > 30) s.tail.shift();
      if (!isReady && s.spec.readyLine && line.includes(s.spec.readyLine)) { isReady = true; readyResolve(); }
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    s.setExited(new Promise<void>((resolve) => {
      child.on('close', (code, signal) => {
        out.end();
        const rec: ExitRecord = { service: s.name, host: s.spec.host.name, at: Date.now(), code, signal, expected: s.expectDown || this.#closing, tail: [...s.tail] };
        this.exits.push(rec);
        if (!isReady) readyReject(new Error(`${s.name} on ${s.spec.host.name} exited (code ${code}, signal ${signal}) before it was ready; last lines:\n${s.tail.slice(-8).join('\n')}\nlog: ${s.logFile}`));
        if (!rec.expected) this.onUnexpectedExit?.(s, rec);
        resolve();
      });
    }));
    child.on('error', (err) => readyReject(err));
    if (s.spec.probe) {
      const probe = s.spec.probe;
      void (async () => {
        while (!isReady && s.child === child && s.running) {
          if (await probe().catch(() => false)) { isReady = true; readyResolve(); return; }
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
    }
    if (!s.spec.readyLine && !s.spec.probe) { isReady = true; readyResolve(); }
    const ms = s.spec.readyTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((_, rej) => { timer = setTimeout(() => rej(new Error(`${s.name} on ${s.spec.host.name} not ready within ${ms} ms; log: ${s.logFile}`)), ms); });
    return Promise.race([ready, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends `signal` (default SIGKILL) and waits for the exit; the exit counts as caused by the test. */
  async kill(s: Service, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!s.running) return;
    s.expectDown = true;
    if (s.paused) { process.kill(s.child!.pid!, 'SIGCONT'); s.paused = false; }
    s.child!.kill(signal);
    const t = setTimeout(() => { if (s.running) s.child!.kill('SIGKILL'); }, 10_000);
    await s.exited;
    clearTimeout(t);
  }

  /** Starts a stopped service again and waits until it is ready. */
  async restart(s: Service): Promise<void> {
    if (s.running) await this.kill(s, 'SIGTERM');
    await this.#launch(s);
  }

  pause(s: Service): void {
    if (!s.running || s.paused) throw new Error(`runner: cannot pause ${s.name} (${s.running ? 'already paused' : 'not running'})`);
    process.kill(s.child!.pid!, 'SIGSTOP');
    s.paused = true;
  }

  resume(s: Service): void {
    if (!s.paused) return;
    if (s.running) process.kill(s.child!.pid!, 'SIGCONT');
    s.paused = false;
  }

  /** Exits the test did not cause. */
  unexpectedExits(): ExitRecord[] {
    return this.exits.filter((e) => !e.expected);
  }

  /** Stops every service: SIGTERM in the given order of groups, SIGKILL after `graceMs`. */
  async stopAll(order: readonly ((s: Service) => boolean)[] = [() => true], graceMs = 10_000): Promise<void> {
    this.#closing = true;
    for (const pick of order) {
      const group = [...this.services.values()].filter((s) => s.running && pick(s));
      await Promise.all(group.map(async (s) => {
        if (s.paused) this.resume(s);
        s.expectDown = true;
        s.child!.kill('SIGTERM');
        const t = setTimeout(() => { if (s.running) s.child!.kill('SIGKILL'); }, graceMs);
        await s.exited;
        clearTimeout(t);
      }));
    }
  }

  /** For the test bed's destroy (synchronous): SIGKILL to everything still running. */
  killAllSync(): void {
    this.#closing = true;
    for (const s of this.services.values()) {
      if (!s.running) continue;
      s.expectDown = true;
      try { process.kill(s.child!.pid!, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}
