// `btcfed devnet`: a local federation on this host — made first when its dir has none, then every
// member's services started and supervised, with the addresses to reach them and a status line
// every few seconds. Loaded only when the command runs (cli/main.ts).

import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { ParamSet } from '#libs/crypto/params.ts';
import { parseConfText } from '#libs/config/index.ts';
import { consensusClient } from './client.ts';
import { runDevnet } from './devnet.ts';
import { initFederation, memberName, memberPorts } from './init.ts';

const rel = (p: string): string => path.relative(process.cwd(), p) || '.';

/** Where each service of each member (or observer) in `dir` listens, from its conf.yaml: one line each. */
function listenLines(dir: string, names: readonly string[]): string[] {
  return names.map((name) => {
    const file = path.join(dir, name, 'conf.yaml');
    const c = parseConfText(fs.readFileSync(file, 'utf8'), file);
    const sv = c.services;
    const metrics = [['consensus', sv.consensus.metrics], ['gateway', sv.gateway.metrics], ['store', sv.store.metrics]]
      .filter(([, a]) => a).map(([what, a]) => `${what} ${a}`).join(', ');
    return `  ${name.padEnd(4)} consensus ${sv.consensus.listen}  admin ${sv.consensus.admin_listen}  gateway ${sv.gateway.listen}  libp2p ${c.network.addresses.join(' ')}  store ${sv.store.listen}`
      + `${c.node.role === 'observer' ? '' : `  signer ${sv.signer.address}`}${metrics ? `  metrics: ${metrics}` : ''}`;
  });
}

/** The chain id a member dir was made for (its conf.yaml), not whatever flag this run was given. */
function chainOf(memberDir: string): string {
  const file = path.join(memberDir, 'conf.yaml');
  return parseConfText(fs.readFileSync(file, 'utf8'), file).consensus.chain_id;
}

export async function devnet(o: { members: number; observers: number; dir: string; basePort: number; chainId: string; paramSet: ParamSet; baseTimeout: string; idleHeartbeat: string; nats: string }): Promise<void> {
  const dir = path.resolve(o.dir);
  const existing = fs.existsSync(path.join(dir, memberName(0), 'conf.yaml'));
  if (existing && fs.existsSync(path.join(dir, memberName(0), 'tls', 'cert.pem')) && !fs.existsSync(path.join(dir, memberName(0), 'tls', 'store.pem'))) {
    throw new Error(`${dir} was made before each service had its own certificate (docs/security.md); remove it to make a new federation`);
  }
  if (!existing) {
    console.log(`making a ${o.members}-member federation in ${dir} …`);
    await initFederation({ members: o.members, observers: o.observers, out: dir, basePort: o.basePort, chainId: o.chainId, paramSet: o.paramSet,
      baseTimeout: o.baseTimeout, idleHeartbeat: o.idleHeartbeat, logFormat: 'json', natsUrl: o.nats });
  }
  const count = fs.readdirSync(dir).filter((e) => /^m\d+$/.test(e)).length;
  const observers = fs.readdirSync(dir).filter((e) => /^o\d+$/.test(e)).length;
  console.log(`starting ${count} members (${count * 4} processes)${observers > 0 ? ` and ${observers} observers (${observers * 3})` : ''}; logs in ${dir}/*/logs/`);
  const net = await runDevnet({ dir, members: count, observers, basePort: o.basePort, natsUrl: o.nats, supervise: true });
  const p0 = memberPorts(o.basePort, 0);
  const m0 = rel(path.join(dir, 'm0'));
  console.log(`
federation is up: ${count} members, chain ${chainOf(path.join(dir, memberName(0)))}
  status   bin/btcfed status --member ${m0}${observers > 0 ? `   (an observer: --member ${rel(path.join(dir, 'o0'))})` : ''}
  submit   bin/btcfed submit --member ${m0} "hello"      (or --count 1000 --size 250)
  watch    bin/btcfed watch  --member ${m0}
  metrics  http://127.0.0.1:${p0.consensusMetrics}/metrics (consensus of m0)
  restart  kill $(cat ${m0}/run/gateway.pid)      (any service: the devnet starts it again)
  stop     Ctrl-C
where each service listens (from each conf.yaml):
${listenLines(dir, [...Array.from({ length: count }, (_, i) => memberName(i)), ...Array.from({ length: observers }, (_, i) => `o${i}`)]).join('\n')}
`);
  let stopping = false;
  const onSignal = () => {
    if (stopping) { for (const p of net.procs) p.child.kill('SIGKILL'); process.exit(130); }
    stopping = true;
    console.log('stopping the federation …');
    void net.stop().then(() => { console.log('stopped'); process.exit(0); });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const client = consensusClient(path.join(dir, 'm0'));
  const observer = observers > 0 ? consensusClient(path.join(dir, 'o0')) : undefined;
  const tick = setInterval(() => {
    client.getStatus({}, new grpc.Metadata(), { deadline: new Date(Date.now() + 2000) }, (err, s) => {
      if (!err && s) console.log(`[m0] view ${s.view}  committed height ${s.committedHeight}  mempool ${s.mempoolSize}`);
    });
    observer?.getStatus({}, new grpc.Metadata(), { deadline: new Date(Date.now() + 2000) }, (err, s) => {
      if (!err && s) console.log(`[o0] observer  committed height ${s.committedHeight}  behind ${s.behind}`);
    });
  }, 5000);
  tick.unref();
  await new Promise(() => undefined);
}
