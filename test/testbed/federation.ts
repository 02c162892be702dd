// A federation across the test bed, set up and started the way an operator does it: per member
// one host for store + gateway + consensus and a separate host for its signer, a 3-node NATS
// cluster on hosts of its own; member dirs made by the btcfed commands (run as child processes,
// as an operator would), services started with the command lines of deploy/systemd/.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { call } from '#libs/rpc/index.ts';
import { ConsensusServiceClient, type GetStatusResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../../cli/client.ts';
import { consumeFreshMarker, isFreshSigner } from '../../cli/fresh.ts';
import { NODE_FLAGS } from '#libs/service/node-flags.ts';
import { Testbed, type Host } from './netns.ts';
import { ROOT, Runner, type Service } from './procs.ts';
import { startNatsCluster, type NatsCluster } from './nats.ts';
import { CheckedLogs } from './checker.ts';
import { allowOperator, approveAndAssemble } from '../support/reconfig.ts';

export const SERVICES = ['store', 'signer', 'gateway', 'consensus'] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface Member {
  index: number;
  name: string;
  /** store + gateway + consensus */
  host: Host;
  signerHost: Host;
  /** The member's data dir (conf.yaml, peers.yaml, tls/, consensus/). */
  dir: string;
  /** The signer's data dir (signer.yaml, the key, its state), as it would sit on the signer host. */
  signerDir: string;
  /** The member's store, as its gateway and consensus dial it (systemd.env's BTCFED_STORE). */
  storeAddr: string;
}

export interface FederationOptions {
  members: number;
  chainId: string;
  /** View timeout base (conf.yaml consensus.base_timeout). */
  baseTimeout?: string;
  /** Size of the tmpfs under each member's consensus data dir (for disk-full faults); 0 = none. */
  consensusTmpfsMb?: number;
  log?: (s: string) => void;
}

export const memberHostName = (i: number) => `m${i}`;
export const signerHostName = (i: number) => `m${i}-signer`;
export const natsHostNames = ['nats1', 'nats2', 'nats3'] as const;

/** Runs `bin/btcfed ...` (the operator's command line) and returns stdout; throws with its stderr. */
export async function btcfed(args: readonly string[]): Promise<string> {
  // The operators' commands run on machines of their own, not on the federation's two cores: a
  // higher priority stands in for that. A command costs about 1.3 CPU-s (mostly loading modules);
  // at the federation's priority each took 4-7 s under its load.
  const child = spawn('nice', ['-n', '-10', process.execPath, path.join(ROOT, 'cli/main.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`btcfed ${args.join(' ')} failed (exit ${code}): ${err.trim() || out.trim()}`);
  return out;
}

/** The member's store address for its gateway and consensus units: BTCFED_STORE in <dir>/systemd.env. */
function storeAddress(dir: string): string {
  const env = fs.readFileSync(path.join(dir, 'systemd.env'), 'utf8');
  const m = /^BTCFED_STORE=(\S+)$/m.exec(env);
  if (!m) throw new Error(`${dir}/systemd.env has no BTCFED_STORE line`);
  return m[1]!;
}

/**
 * The operator's path, per member on its own host: `btcfed member init` (its own CA, certificates
 * for its host's and its signer host's addresses, keys, a public card); the cards to whoever makes
 * the genesis, `btcfed genesis`; then on each member's host `btcfed member join`. Afterwards, as
 * the docs say: the CA goes offline (out of the member dir) and the signer dir to the signer host.
 */
async function setupMembers(workDir: string, o: FederationOptions, members: Member[], natsUrls: string[]): Promise<void> {
  await Promise.all(members.map((m) => initMember(m, natsUrls)));
  const genesis = path.join(workDir, 'genesis.yaml');
  // A block every view, as the chaos campaign's recovery figures were measured (it judges recovery by heights).
  await btcfed(['genesis', '--chain-id', o.chainId, '--base-timeout', o.baseTimeout ?? '1s', '--idle-heartbeat', '0', '--out', genesis,
    ...members.flatMap((m) => ['--card', path.join(m.dir, 'member-card.yaml')])]);
  await Promise.all(members.map((m) => btcfed(['member', 'join', '--genesis', genesis, '--dir', m.dir])));
  for (const m of members) await moveApart(workDir, m);
}

/** `btcfed member init` for `m`, on its host: its own CA, certificates for its hosts' addresses, keys, a public card. */
async function initMember(m: Member, natsUrls: readonly string[]): Promise<void> {
  // The passphrase goes to the signer host apart from the signer dir, as an operator moves it there.
  const passphrase = path.join(path.dirname(m.signerDir), `${m.name}.passphrase`);
  fs.mkdirSync(path.dirname(m.dir), { recursive: true });
  fs.mkdirSync(path.dirname(m.signerDir), { recursive: true });
  await btcfed(['member', 'init', '--name', m.name, '--out', m.dir, '--host', m.host.addr,
    '--signer-host', m.signerHost.addr, '--base-port', String(BASE_PORT), '--nats', natsUrls.join(','),
    '--passphrase-out', passphrase, '--passphrase-file', passphrase]);
}

/** After `member join`, as the docs say: the CA goes offline (out of the member dir), the signer dir to the signer host. */
async function moveApart(workDir: string, m: Member): Promise<void> {
  const offline = path.join(workDir, 'offline', m.name);
  fs.mkdirSync(offline, { recursive: true });
  fs.renameSync(path.join(m.dir, 'ca'), path.join(offline, 'ca'));
  // The member's operator certificate may approve reconfigurations at its signer (docs/signer.md).
  await allowOperator(m.dir);
  fs.renameSync(path.join(m.dir, 'signer'), m.signerDir);
  m.storeAddr = storeAddress(m.dir);
}

function newMember(tb: Testbed, i: number): Member {
  return {
    index: i, name: `m${i}`, host: tb.host(memberHostName(i)), signerHost: tb.host(signerHostName(i)),
    dir: path.join(tb.workDir, 'hosts', memberHostName(i), 'm' + i),
    signerDir: path.join(tb.workDir, 'hosts', signerHostName(i), 'm' + i),
    storeAddr: '',
  };
}

/** Every member on its own host uses the same ports (member init's defaults). */
export const BASE_PORT = 7100;

export class Federation {
  readonly tb: Testbed;
  readonly runner: Runner;
  readonly nats: NatsCluster;
  readonly members: Member[];
  readonly clients: ConsensusServiceClient[];
  readonly options: FederationOptions;
  /** What the checks of this federation's logs have read and found agreed (each check reads on from it). */
  readonly checked = new CheckedLogs();

  private constructor(tb: Testbed, runner: Runner, nats: NatsCluster, members: Member[], o: FederationOptions) {
    this.tb = tb;
    this.runner = runner;
    this.nats = nats;
    this.members = members;
    this.options = o;
    this.clients = members.map((m) => consensusClient(m.dir));
  }

  /** Makes the test bed (hosts m<i>, m<i>-signer, nats1..3), the NATS cluster, the members, and starts every service. */
  static async start(o: FederationOptions): Promise<Federation> {
    const say = o.log ?? (() => undefined);
    const hostNames = [
      ...Array.from({ length: o.members }, (_, i) => memberHostName(i)),
      ...Array.from({ length: o.members }, (_, i) => signerHostName(i)),
      ...natsHostNames,
    ];
    const tb = await Testbed.create(hostNames);
    say(`test bed: ${hostNames.length} hosts in ${tb.workDir}`);
    const runner = new Runner(tb);
    let nats: NatsCluster | undefined;
    try {
      const t0 = Date.now();
      nats = await startNatsCluster(tb, runner, natsHostNames.map((n) => tb.host(n)));
      say(`NATS cluster up (${nats.urls.join(', ')}), stream R3, in ${Date.now() - t0} ms`);
      const members = Array.from({ length: o.members }, (_, i) => newMember(tb, i));
      await setupMembers(tb.workDir, o, members, nats.urls);
      if (o.consensusTmpfsMb) for (const m of members) tb.mountTmpfs(path.join(m.dir, 'consensus'), o.consensusTmpfsMb);
      say(`member dirs made in ${Date.now() - t0} ms`);
      const fed = new Federation(tb, runner, nats, members, o);
      for (const service of SERVICES) {
        await Promise.all(members.map((m) => runner.start(fed.#spec(m, service))));
        say(`  ${service} ready on ${o.members} members (${Date.now() - t0} ms)`);
      }
      return fed;
    } catch (err) {
      // Its connection reconnects for ever: left open, this process would never end.
      await nats?.close().catch(() => undefined);
      await runner.stopAll().catch(() => undefined);
      tb.destroy({ keepDir: true });
      throw err;
    }
  }

  /**
   * A member to be added, on two new hosts of its own (m<N>, m<N>-signer), set up as its operator
   * does it: `member init`, `member join --added` with the genesis file any member holds, the CA
   * offline and the signer dir on the signer host. Its card is then there to propose it with;
   * `startMember` starts its services. It is in `members` from here on, its client in `clients`.
   */
  async prepareMember(): Promise<Member> {
    const i = this.members.length;
    this.tb.addHost(memberHostName(i));
    this.tb.addHost(signerHostName(i));
    const m = newMember(this.tb, i);
    await initMember(m, this.nats.urls);
    await btcfed(['member', 'join', '--genesis', path.join(this.tb.workDir, 'genesis.yaml'), '--dir', m.dir, '--added']);
    await moveApart(this.tb.workDir, m);
    if (this.options.consensusTmpfsMb) this.tb.mountTmpfs(path.join(m.dir, 'consensus'), this.options.consensusTmpfsMb);
    this.members.push(m);
    this.clients.push(consensusClient(m.dir));
    return m;
  }

  /** Starts a member's services as systemd starts a host's units: the store first (the others fetch their config from it), then the rest at once. */
  async startMember(m: Member): Promise<void> {
    await this.runner.start(this.#spec(m, 'store'));
    await Promise.all(SERVICES.filter((s) => s !== 'store').map((s) => this.runner.start(this.#spec(m, s))));
  }

  /** A service's command line, as in deploy/systemd/btcfed-<service>@.service. */
  #spec(m: Member, service: ServiceName) {
    const node = process.execPath;
    const base = { name: `${m.name}.${service}`, cmd: node, readyLine: `"${service} ready"`, readyTimeoutMs: 90_000 };
    switch (service) {
      case 'store': return { ...base, host: m.host, args: () => [...NODE_FLAGS, 'services/store/main.ts', '--data-dir', m.dir] };
      case 'gateway': return { ...base, host: m.host, args: () => [...NODE_FLAGS, 'services/gateway/main.ts', '--store', m.storeAddr, '--data-dir', m.dir] };
      case 'consensus': return { ...base, host: m.host, args: () => [...NODE_FLAGS, 'services/consensus/main.ts', '--store', m.storeAddr, '--data-dir', m.dir] };
      case 'signer': return {
        ...base, host: m.signerHost,
        // --init only on the very first start of a new key (the operator's one-time step).
        args: () => [...NODE_FLAGS, 'services/signer/main.ts', 'run', '--data-dir', m.signerDir, ...(isFreshSigner(m.signerDir) ? ['--init'] : [])],
        onReady: async () => { if (isFreshSigner(m.signerDir)) await consumeFreshMarker(m.signerDir); },
      };
    }
  }

  /**
   * The operators' ceremony for `changeArgs` (`btcfed reconfigure propose` options) as on separate
   * hosts: proposed with m0's dir, approved by each of `approvers` at its own signer's host with its
   * operator certificate, assembled. Returns the transaction's file.
   */
  async assembleChange(changeArgs: readonly string[], approvers: readonly number[], name: string): Promise<string> {
    const dir = path.join(this.tb.workDir, 'changes');
    fs.mkdirSync(dir, { recursive: true });
    const change = path.join(dir, `${name}.yaml`);
    const m0 = this.members[0]!.dir;
    await btcfed(['reconfigure', 'propose', '--member', m0, ...changeArgs, '--out', change]);
    const signerDirs = new Map(this.members.map((m) => [m.dir, m.signerDir]));
    return approveAndAssemble(btcfed, change, approvers.map((i) => this.members[i]!.dir), m0, path.join(dir, `${name}.tx`), (d) => signerDirs.get(d)!);
  }

  service(i: number, service: ServiceName): Service {
    return this.runner.get(`${this.members[i]!.name}.${service}`);
  }

  status(i: number, deadlineMs = 3000): Promise<GetStatusResponse> {
    const c = this.clients[i]!;
    return call(c.getStatus.bind(c), {}, { deadlineMs });
  }

  /** Committed height of each member (undefined where it does not answer). */
  async heights(deadlineMs = 3000): Promise<(number | undefined)[]> {
    return Promise.all(this.members.map(async (_, i) => {
      try { return Number((await this.status(i, deadlineMs)).committedHeight); } catch { return undefined; }
    }));
  }

  /** Each member's epoch (undefined where it does not answer). */
  async epochs(deadlineMs = 3000): Promise<(number | undefined)[]> {
    return Promise.all(this.members.map(async (_, i) => {
      try { return Number((await this.status(i, deadlineMs)).epoch); } catch { return undefined; }
    }));
  }

  /** Waits until `pred` over the heights holds; throws with the last heights after `ms`. */
  async waitHeights(what: string, pred: (h: (number | undefined)[]) => boolean, ms: number): Promise<(number | undefined)[]> {
    const t0 = Date.now();
    let h: (number | undefined)[] = [];
    while (Date.now() - t0 < ms) {
      h = await this.heights();
      if (pred(h)) return h;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out after ${ms} ms waiting for ${what}; heights ${JSON.stringify(h)}`);
  }

  /** A whole host down: every process on it killed, its interface down. */
  async hostDown(host: Host): Promise<void> {
    await Promise.all(this.runner.onHost(host).map((s) => this.runner.kill(s, 'SIGKILL')));
    this.tb.link(host, false);
  }

  /**
   * The host's interface up and its services started again as systemd would at boot: the store
   * first (the others fetch their config from it), then the rest at once.
   */
  async hostUp(host: Host): Promise<void> {
    this.tb.link(host, true);
    const on = this.runner.onHost(host);
    const stores = on.filter((s) => s.name.endsWith('.store'));
    await Promise.all(stores.map((s) => this.runner.restart(s)));
    await Promise.all(on.filter((s) => !stores.includes(s)).map((s) => this.runner.restart(s)));
  }

  /** Stops every service (consensus first, stores and NATS last) and removes the test bed; keepDir keeps the work dir. */
  async stop(opts: { keepDir?: boolean } = {}): Promise<void> {
    for (const c of this.clients) c.close();
    await this.nats.close();
    const is = (svc: string) => (s: Service) => s.name.endsWith(`.${svc}`);
    await this.runner.stopAll([is('consensus'), is('gateway'), is('signer'), is('store'), () => true]);
    this.tb.destroy(opts);
  }
}
