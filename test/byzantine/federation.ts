// The honest side of a Byzantine run: a real 4-member federation (N = 4, f = 1) started with
// `btcfed init` + the devnet, 16 real processes over real libp2p, gRPC with mutual TLS and NATS.
// Member m3's consensus process is stopped by the scenario runner and replaced by the Byzantine
// member (member.ts); m0–m2 stay honest. The checks every scenario ends with live here: honest
// members keep committing, none halts, their logs agree, their memory and disk stay bounded.

import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseDocument } from 'yaml';
import { toHex } from '#libs/crypto/index.ts';
import { parseConfText, parsePrivateKey } from '#libs/config/index.ts';
import { call, callPatiently } from '#libs/rpc/index.ts';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { adminClient, consensusClient } from '../../cli/client.ts';
import { initFederation, memberPorts } from '../../cli/init.ts';
import { runDevnet, type Devnet, type Service } from '../../cli/devnet.ts';
import { NATS_URL } from '../support/store.ts';
import { allowOperator } from '../support/reconfig.ts';
import type { ServiceProcess } from '../support/process.ts';

export const N = 4;
export const HONEST = [0, 1, 2] as const;
export const BYZANTINE = 3;
/** The observer o0 (follows the validators, m3 among them): ports after the members'. */
export const OBSERVER = N;

import { until } from '../support/until.ts';
import { freePortBlock } from '../support/ports.ts';

export { until };
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sum of a metric's samples in one Prometheus text exposition, optionally only those whose labels match. */
export function sumMetric(text: string, name: string, labels?: RegExp): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? ([-0-9.e+]+|NaN)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels && !labels.test(m[2] ?? '')) continue;
    sum += Number(m[3]);
  }
  return sum;
}

/** A member dir's conf.yaml: peers learned only in 127.0.0.0/8, loopback addresses allowed. */
async function discoverOnThisHost(memberDir: string): Promise<void> {
  const file = path.join(memberDir, 'conf.yaml');
  const doc = parseDocument(await fs.readFile(file, 'utf8'));
  doc.setIn(['peers', 'allow_private_addresses'], true);
  doc.setIn(['peers', 'learned_networks'], ['127.0.0.0/8']);
  await fs.writeFile(file, doc.toString());
}

export class Federation {
  /** Services a scenario started besides the devnet's (a member it added): stopped with the federation. */
  readonly extra: ServiceProcess[] = [];
  readonly discoverOnThisHost = discoverOnThisHost;
  readonly dir: string;
  readonly basePort: number;
  readonly chainId: string;
  readonly net: Devnet;
  readonly clients: ConsensusServiceClient[];
  readonly observer: ConsensusServiceClient;

  private constructor(dir: string, basePort: number, chainId: string, net: Devnet, clients: ConsensusServiceClient[]) {
    this.dir = dir; this.basePort = basePort; this.chainId = chainId; this.net = net; this.clients = clients;
    this.observer = consensusClient(path.join(dir, 'o0'));
  }

  static async start(): Promise<Federation> {
    // Below Linux's ephemeral range (32768+), where outgoing connections could already hold a port.
    const basePort = await freePortBlock(20_000, 120);
    const chainId = `byz-${randomBytes(3).toString('hex')}`;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-byz-'));
    try {
      const members = await initFederation({ members: N, observers: 1, out: dir, basePort, chainId, paramSet: 'slh-dsa-sha2-128f', baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
      // Each operator may approve a change at its signer (the scenarios that cross an epoch).
      for (const [i, member] of members.slice(0, N).entries()) await allowOperator(path.join(dir, `m${i}`), member.operator);
      // Discovery only on this host: what a stranger announces is taken and dialled only in
      // 127.0.0.0/8 (the rest is refused as outside the networks), never out of the machine.
      for (const m of [...Array.from({ length: N }, (_, i) => `m${i}`), 'o0']) await discoverOnThisHost(path.join(dir, m));
      const net = await runDevnet({ dir, members: N, observers: 1, basePort, natsUrl: NATS_URL, quiet: true }, () => undefined);
      const clients = Array.from({ length: N }, (_, i) => consensusClient(path.join(dir, `m${i}`)));
      return new Federation(dir, basePort, chainId, net, clients);
    } catch (err) {
      if (!process.env.KEEP_BYZ) await fs.rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  memberDir(i: number): string { return path.join(this.dir, `m${i}`); }
  /** Member i's libp2p peer id, from its conf.yaml's key. */
  peerId(i: number): string {
    const id = parsePrivateKey(parseConfText(readFileSync(path.join(this.memberDir(i), 'conf.yaml'), 'utf8')).node.private_key ?? '');
    if (!id.ok) throw new Error(`m${i}'s conf.yaml: node.private_key: ${id.reason}`);
    return id.value.peerId;
  }
  ports(i: number) { return memberPorts(this.basePort, i); }
  proc(i: number, service: Service) { return this.net.procs.find((p) => p.member === `m${i}` && p.service === service)!; }

  /** Stops one service of one member (SIGTERM, then waits for its exit). */
  async stopService(i: number, service: Service): Promise<void> {
    const p = this.proc(i, service);
    if (p.exited) return;
    const gone = new Promise((r) => p.child.once('exit', r));
    p.child.kill('SIGTERM');
    await gone;
  }

  /** An operator of member i forgives validator v (AdminService Unmute): its mute and leader suspicion end there. */
  async unmute(i: number, v: number): Promise<boolean> {
    const admin = adminClient(this.memberDir(i));
    try {
      return (await call(admin.unmute.bind(admin), { validator: v }, { deadlineMs: 5000 })).wasMuted;
    } finally {
      admin.close();
    }
  }

  /** GetStatus; an error says which member's public API did not answer. */
  async status(i: number) {
    const c = this.clients[i]!;
    try {
      return await call(c.getStatus.bind(c), {}, { deadlineMs: 5000 });
    } catch (err) {
      throw new Error(`m${i}'s consensus did not answer GetStatus: ${err instanceof Error ? err.message.slice(0, 120) : String(err)}`);
    }
  }

  async heights(members: readonly number[] = HONEST): Promise<number[]> {
    return Promise.all(members.map(async (i) => Number((await this.status(i)).committedHeight)));
  }

  /** Honest members commit at least `k` more blocks within `ms`; none reports a halt. */
  async keepsCommitting(k: number, ms = 60_000): Promise<{ from: number; to: number }> {
    const t0 = Date.now();
    const start = await until('every honest member to answer GetStatus', async () => Math.min(...(await this.heights())), ms);
    const to = await until(`every honest member to commit ${k} more blocks (from ${start})`, async () => {
      await this.noneHalted();
      const hs = await this.heights();
      return Math.min(...hs) >= start + k ? Math.min(...hs) : undefined;
    }, Math.max(5000, ms - (Date.now() - t0)));
    return { from: start, to };
  }

  /** GetStatus of every honest member answers and none reports DIVERGENCE or a halt. */
  async noneHalted(): Promise<void> {
    for (const i of HONEST) {
      const s = await this.status(i) as unknown as Record<string, unknown>;
      const text = JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? toHex(v) : v));
      if (s.halted === true || /DIVERGENCE/.test(text) || (typeof s.haltReason === 'string' && s.haltReason !== '')) {
        throw new Error(`m${i} halted: ${text.slice(0, 400)}`);
      }
    }
  }

  /** The committed block hash at every height 1..top, the same on every honest member. */
  /** The highest height whose hash every honest member gave alike at the last check, and that hash. */
  #agreed = { height: 0, hash: '' };

  /**
   * The honest members' logs agree up to the lowest of their heights. Read from the height agreed
   * at the last check on (its hash again, then each block since): a block's hash covers its
   * parent's, so equal hashes at one height pin the whole prefix, and a run of thousands of blocks
   * does not re-read the chain at every check — which spent the test's read budget on the public
   * API (read_per_client) and failed the health checks with RESOURCE_EXHAUSTED.
   */
  async logsAgree(): Promise<number> {
    const top = Math.min(...(await this.heights()));
    // A member below the agreed height (restarted, catching up): the whole chain again.
    if (top < this.#agreed.height) this.#agreed = { height: 0, hash: '' };
    const start = Math.max(1, this.#agreed.height);
    const logs = await Promise.all(HONEST.map(async (i) => {
      const c = this.clients[i]!;
      const out = new Map<number, string>();
      for (let from = start; from <= top; from += 100) {
        // As an application reading a long log would: a page the member's read limits refuse
        // (the runner is one client of each member) is asked again after the wait it names. A
        // member below the agreed height makes this read the whole chain, thousands of blocks
        // late in a campaign: 23 pages at height 2,300 spent the validator's 600 ms burst.
        const r = await callPatiently(c.listBlocks.bind(c), { fromHeight: from, limit: 100, headersOnly: true }, { deadlineMs: 15_000, patienceMs: 120_000 });
        for (const b of r.blocks) if (b.block!.header!.height <= top) out.set(b.block!.header!.height, toHex(b.blockHash));
      }
      return out;
    }));
    for (const [k, l] of logs.entries()) {
      const missing: number[] = [];
      for (let h = start; h <= top; h++) if (!l.has(h)) missing.push(h);
      if (missing.length > 0) throw new Error(`m${HONEST[k]} reports committed height ≥ ${top} but ListBlocks has no block at height ${missing.slice(0, 10).join(', ')}`);
      if (this.#agreed.height > 0 && l.get(this.#agreed.height) !== this.#agreed.hash) {
        throw new Error(`m${HONEST[k]} now gives another block at height ${this.#agreed.height}, agreed before: ${l.get(this.#agreed.height)} vs ${this.#agreed.hash}`);
      }
      for (let h = start; h <= top; h++) {
        if (l.get(h) !== logs[0]!.get(h)) throw new Error(`m${HONEST[k]} and m0 disagree at height ${h}: ${l.get(h)} vs ${logs[0]!.get(h)}`);
      }
    }
    if (top >= start) this.#agreed = { height: top, hash: logs[0]!.get(top)! };
    return top;
  }

  async metrics(i: number, service: 'consensus' | 'gateway' | 'signer'): Promise<string> {
    const p = this.ports(i);
    const port = service === 'consensus' ? p.consensusMetrics : service === 'gateway' ? p.gatewayMetrics : p.signerMetrics;
    return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  }

  /** Sum of a metric's samples on one member's service, optionally only those whose labels match. */
  async metric(i: number, service: 'consensus' | 'gateway' | 'signer', name: string, labels?: RegExp): Promise<number> {
    return sumMetric(await this.metrics(i, service), name, labels);
  }

  /** Resident memory of one member's service process, in MiB (from /proc). */
  async rssMiB(i: number, service: Service): Promise<number> {
    const pid = this.proc(i, service).child.pid!;
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  }

  async diskMiB(rel: string): Promise<number> {
    return (await dirBytes(path.join(this.dir, rel))) / (1 << 20);
  }

  /** The observer's committed height and the hash it holds there. */
  async observed(): Promise<{ height: number; hash: string }> {
    const s = await call(this.observer.getStatus.bind(this.observer), {}, { deadlineMs: 5000 });
    return { height: Number(s.committedHeight), hash: toHex(s.committedHash) };
  }

  async stop(): Promise<void> {
    this.observer.close();
    for (const c of this.clients) c.close();
    for (const p of [...this.extra].reverse()) await p.stop().catch(() => undefined);
    await this.net.stop();
  }

  async remove(keep: boolean): Promise<void> {
    if (keep) console.log(`# byzantine: kept ${this.dir}`);
    else await fs.rm(this.dir, { recursive: true, force: true });
  }

  /** The last warnings of every honest service, for whoever reads a failure. */
  async warnings(): Promise<string[]> {
    const out: string[] = [];
    for (const i of HONEST) {
      for (const service of ['consensus', 'gateway', 'signer']) {
        const text = await fs.readFile(path.join(this.memberDir(i), 'logs', `${service}.log`), 'utf8').catch(() => '');
        for (const l of text.split('\n').filter((x) => /"level":(40|50|60)/.test(x)).slice(-5)) out.push(`[m${i}/${service}] ${l.slice(0, 300)}`);
      }
    }
    return out;
  }
}

async function dirBytes(p: string): Promise<number> {
  const st = await fs.stat(p).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const e of await fs.readdir(p)) n += await dirBytes(path.join(p, e));
  return n;
}
