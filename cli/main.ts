// btcfed: the command line of the project.
//   btcfed member init --name NAME --out DIR --host HOST[,HOST...] [--signer-host HOST[,...]] [--base-port 7100] [--param-set SET] [--nats URL[,URL...]] [--listen-all]
//   btcfed genesis --chain-id ID --card FILE [--card FILE ...] --out genesis.yaml [--base-timeout 1s]
//   btcfed member join --genesis genesis.yaml --dir DIR
//   btcfed init    --members N --out DIR [--base-port 7100] [--chain-id ID] [--param-set SET] [--base-timeout 1s] [--server-names A,B]
//   btcfed devnet  [--members 4] [--dir .devnet] [--base-port 7100] [--nats URL]
//   btcfed status  [--member DIR] [--consensus HOST:PORT]
//   btcfed submit  [--member DIR] [--consensus HOST:PORT] [--count N --size BYTES | TX...] [--no-wait]
//   btcfed watch   [--member DIR] [--consensus HOST:PORT] [--from HEIGHT]
//   btcfed admin   pause|resume|force-view-change|dump [--member DIR]
//   btcfed verify  --height H [--tx HEX] [--member DIR] [--consensus HOST:PORT] [--trust CONF]
//   btcfed cert issue --client NAME --member NAME --ca-dir DIR --out DIR

import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { isParamSet } from '#libs/crypto/index.ts';
import { parseConfText, parseDuration } from '#libs/config/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { admin, adminClient, consensusClient, status, submit, watch } from './client.ts';
import { runDevnet } from './devnet.ts';
import { trustRootFrom, verifyBlock } from './verify.ts';
import { issueClientCert } from './cert.ts';
import { VERSION } from '#libs/version/index.ts';
import { initFederation, memberName, memberPorts } from './init.ts';
import { CARD_FILE, initMember, joinMember, makeGenesis } from './member.ts';

const USAGE = `usage:
  btcfed member init --name NAME --out DIR --host HOST[,HOST...] [--signer-host HOST[,HOST...]] [--base-port 7100]
                 [--param-set slh-dsa-sha2-128f] [--nats URL[,URL...]] [--listen-all]
                 (one member on its operator's host: keys, certificates for those names, and its public DIR/member-card.yaml)
  btcfed genesis --chain-id ID --card FILE --card FILE ... --out genesis.yaml [--base-timeout 1s]
                 (the validator set from every member's card; prints the digest operators compare)
  btcfed member join --genesis genesis.yaml --dir DIR
                 (completes a member dir from the genesis: validator set, chain id, the other members as peers)
  btcfed init    --members N --out DIR [--base-port 7100] [--chain-id ID] [--param-set slh-dsa-sha2-128f] [--base-timeout 1s]
                 [--server-names HOST,IP,...]   (extra names in every server certificate; localhost and 127.0.0.1 are always in)
  btcfed devnet  [--members 4] [--dir .devnet] [--base-port 7100] [--nats nats://127.0.0.1:4222]
  btcfed status  [--member .devnet/m0] [--consensus HOST:PORT]
  btcfed submit  [--member .devnet/m0] [--consensus HOST:PORT] [--count N --size BYTES | TX...] [--no-wait] [--timeout 60s]
  btcfed watch   [--member .devnet/m0] [--consensus HOST:PORT] [--from HEIGHT]
  btcfed admin   pause|resume|force-view-change|dump [--member .devnet/m0]   (with the member's operator certificate)
  btcfed verify  --height H [--tx HEX] [--member .devnet/m0] [--consensus HOST:PORT] [--trust CONF]
                 (checks block H from that member against the validator set of CONF, default the member's conf.yaml)
  btcfed cert issue --client NAME --member-name m0 --ca-dir DIR/ca/m0 --out DIR
                 (a client certificate for one application of member m0, for its public API)`;

const OPTIONS = {
  members: { type: 'string' }, out: { type: 'string' }, dir: { type: 'string' }, 'base-port': { type: 'string' },
  'chain-id': { type: 'string' }, 'param-set': { type: 'string' }, 'base-timeout': { type: 'string' }, nats: { type: 'string' },
  member: { type: 'string' }, consensus: { type: 'string' }, count: { type: 'string' }, size: { type: 'string' },
  'no-wait': { type: 'boolean' }, from: { type: 'string' }, help: { type: 'boolean' }, 'server-names': { type: 'string' },
  height: { type: 'string' }, tx: { type: 'string' }, trust: { type: 'string' }, version: { type: 'boolean' },
  client: { type: 'string' }, 'member-name': { type: 'string' }, 'ca-dir': { type: 'string' }, timeout: { type: 'string' },
  name: { type: 'string' }, host: { type: 'string', multiple: true }, 'signer-host': { type: 'string', multiple: true },
  'listen-all': { type: 'boolean' }, card: { type: 'string', multiple: true }, genesis: { type: 'string' },
} as const;

/** A flag given as "A,B" or several times: every value, trimmed, none empty. */
function list(v: readonly string[] | undefined): string[] {
  return (v ?? []).flatMap((x) => x.split(',')).map((x) => x.trim()).filter((x) => x !== '');
}

/** The chain id a member dir was made for (its conf.yaml), not whatever flag this run was given. */
function chainOf(memberDir: string): string {
  const file = path.join(memberDir, 'conf.yaml');
  return parseConfText(fs.readFileSync(file, 'utf8'), file).consensus.chain_id;
}

/** --timeout: a duration as conf.yaml writes them ("30s", "2m", or seconds), in ms. */
function parseSeconds(v: string): number {
  const r = parseDuration(v);
  if (!r.ok) throw new Error(`--timeout: ${r.reason}`);
  return r.value;
}

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

async function main(): Promise<void> {
  const { values: f, positionals } = parseArgs({ args: process.argv.slice(2), options: OPTIONS, allowPositionals: true, strict: true });
  const [cmd, ...rest] = positionals;
  if (f.version) {
    console.log(VERSION);
    return;
  }
  if (f.help && cmd === undefined) {
    console.log(USAGE);
    return;
  }
  const paramSet = f['param-set'] ?? 'slh-dsa-sha2-128f';
  if (!isParamSet(paramSet)) throw new Error(`--param-set: unknown parameter set "${paramSet}"`);
  const natsUrl = f.nats ?? 'nats://127.0.0.1:4222';
  const basePort = int('base-port', f['base-port'], 7100);
  switch (cmd) {
    case 'member': {
      if (rest[0] === 'init') {
        if (!f.name || !f.out) throw new Error('member init needs --name NAME --out DIR --host HOST[,HOST...]');
        const m = await initMember({ name: f.name, dir: path.resolve(f.out), hosts: list(f.host), signerHosts: list(f['signer-host']), basePort, paramSet,
          natsUrls: list([natsUrl]), listenAll: f['listen-all'] ?? false });
        const dir = path.resolve(f.out);
        console.log(`made member ${m.name} in ${dir}
  card     ${path.join(dir, CARD_FILE)}   (public: send it to whoever assembles the genesis)
  peer     ${m.identity.peerId}
  SLH-DSA  ${m.publicKey.slice(0, 32)}… (${paramSet})
  libp2p   ${m.card.libp2p.addresses.join(' ')}
  signer   ${path.join(dir, 'signer')}  (after member join, the only dir its host gets)
  CA keys  ${path.join(dir, 'ca')}  (move them offline; no service reads them)
next: btcfed genesis --chain-id ID --card ${path.join(dir, CARD_FILE)} --card … --out genesis.yaml, then btcfed member join --genesis genesis.yaml --dir ${dir}`);
        return;
      }
      if (rest[0] === 'join') {
        if (!f.genesis || !f.dir) throw new Error('member join needs --genesis genesis.yaml --dir DIR');
        const r = await joinMember({ genesisFile: path.resolve(f.genesis), dir: path.resolve(f.dir) });
        const g = r.genesis;
        console.log(`${r.changed ? 'joined' : 'already joined'}: ${g.members[r.index]!.name} is validator ${r.index} of ${g.members.length} on chain ${g.chain_id}
  genesis digest ${g.digest}  (compare it with the other operators)`);
        return;
      }
      throw new Error(`member: the actions are "init" and "join", not ${JSON.stringify(rest[0] ?? '')}`);
    }
    case 'genesis': {
      if (!f['chain-id'] || !f.out) throw new Error('genesis needs --chain-id ID --card FILE [--card FILE ...] --out genesis.yaml');
      const g = await makeGenesis({ chainId: f['chain-id'], baseTimeout: f['base-timeout'] ?? '1s', cardFiles: list(f.card).map((c) => path.resolve(c)), out: path.resolve(f.out) });
      console.log(`wrote ${path.resolve(f.out)}: chain ${g.chain_id}, ${g.members.length} validator(s) in this order: ${g.members.map((m) => m.name).join(', ')}`);
      console.log(`digest ${g.digest}`);
      return;
    }
    case 'init': {
      if (!f.out) throw new Error('--out is required');
      const members = await initFederation({ members: int('members', f.members, 4), out: path.resolve(f.out), basePort,
        chainId: f['chain-id'] ?? 'btcfed-devnet', paramSet, baseTimeout: f['base-timeout'] ?? '1s', logFormat: 'json', natsUrl,
        serverNames: (f['server-names'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '') });
      console.log(`made ${members.length} member dirs in ${path.resolve(f.out)}; the members' CA keys are in ${path.join(path.resolve(f.out), 'ca')} (move them offline):`);
      for (const m of members) console.log(`  ${m.name}  peer ${m.identity.peerId}  SLH-DSA ${m.publicKey.slice(0, 16)}…  ports ${m.ports.store}–${m.ports.signerMetrics}`);
      return;
    }
    case 'devnet': {
      const dir = path.resolve(f.dir ?? '.devnet');
      const n = int('members', f.members, 4);
      const existing = fs.existsSync(path.join(dir, memberName(0), 'conf.yaml'));
      if (existing && fs.existsSync(path.join(dir, memberName(0), 'tls', 'cert.pem')) && !fs.existsSync(path.join(dir, memberName(0), 'tls', 'store.pem'))) {
        throw new Error(`${dir} was made before each service had its own certificate (docs/security.md); remove it to make a new federation`);
      }
      if (!existing) {
        console.log(`making a ${n}-member federation in ${dir} …`);
        await initFederation({ members: n, out: dir, basePort, chainId: f['chain-id'] ?? 'btcfed-devnet', paramSet,
          baseTimeout: f['base-timeout'] ?? '1s', logFormat: 'json', natsUrl });
      }
      const count = fs.readdirSync(dir).filter((e) => /^m\d+$/.test(e)).length;
      console.log(`starting ${count} members (${count * 4} processes); logs in ${dir}/m*/logs/`);
      const net = await runDevnet({ dir, members: count, basePort, natsUrl, supervise: true });
      const p0 = memberPorts(basePort, 0);
      console.log(`
federation is up: ${count} members, chain ${chainOf(path.join(dir, memberName(0)))}
  status   bin/btcfed status --member ${path.relative(process.cwd(), path.join(dir, 'm0')) || '.'}
  submit   bin/btcfed submit --member ${path.relative(process.cwd(), path.join(dir, 'm0'))} "hello"      (or --count 1000 --size 250)
  watch    bin/btcfed watch  --member ${path.relative(process.cwd(), path.join(dir, 'm0'))}
  metrics  http://127.0.0.1:${p0.consensusMetrics}/metrics (consensus of m0)
  restart  kill $(cat ${path.relative(process.cwd(), path.join(dir, 'm0'))}/run/gateway.pid)      (any service: the devnet starts it again)
  stop     Ctrl-C
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
      const tick = setInterval(() => {
        client.getStatus({}, new grpc.Metadata(), { deadline: new Date(Date.now() + 2000) }, (err, s) => {
          if (!err && s) console.log(`[m0] view ${s.view}  committed height ${s.committedHeight}  mempool ${s.mempoolSize}`);
        });
      }, 5000);
      tick.unref();
      await new Promise(() => undefined);
      return;
    }
    case 'admin': {
      const client = adminClient(path.resolve(f.member ?? '.devnet/m0'));
      try {
        await admin(client, rest[0] ?? '');
      } finally {
        client.close();
      }
      return;
    }
    case 'cert': {
      if (rest[0] !== 'issue') throw new Error('cert: the only action is "issue"');
      if (!f.client || !f['member-name'] || !f['ca-dir'] || !f.out) throw new Error('cert issue needs --client NAME --member-name NAME --ca-dir DIR --out DIR');
      const made = await issueClientCert({ member: f['member-name'], caDir: path.resolve(f['ca-dir']), app: f.client, out: path.resolve(f.out) });
      console.log(`issued ${made.name}: certificate ${made.cert}, key ${made.key} (keep it secret), member CA ${made.ca}`);
      return;
    }
    case 'verify': {
      if (f.height === undefined) throw new Error('--height is required');
      const memberDir = path.resolve(f.member ?? '.devnet/m0');
      const root = trustRootFrom(path.resolve(f.trust ?? path.join(memberDir, 'conf.yaml')));
      if (f.tx !== undefined && !/^[0-9a-f]{64}$/i.test(f.tx)) throw new Error('--tx must be a transaction hash: 64 hex digits');
      const client = consensusClient(memberDir, f.consensus);
      try {
        const v = await verifyBlock(client, root, int('height', f.height, 0), f.tx === undefined ? undefined : Buffer.from(f.tx, 'hex'));
        if (!v.ok) {
          console.log(`refused: ${v.reason}`);
          process.exitCode = 1;
          return;
        }
        console.log(`verified: block ${v.height} is committed on chain ${root.chainId}: a COMMIT QC of view ${v.view} signed by validators ${v.signers.join(', ')} of ${root.publicKeys.length}`
          + (v.txIndex === undefined ? '' : `; transaction ${f.tx} is at index ${v.txIndex}`));
      } finally {
        client.close();
      }
      return;
    }
    case 'status':
    case 'submit':
    case 'watch': {
      const client = consensusClient(path.resolve(f.member ?? '.devnet/m0'), f.consensus);
      try {
        if (cmd === 'status') await status(client);
        else if (cmd === 'watch') await watch(client, int('from', f.from, 0));
        else {
          const count = int('count', f.count, 0);
          const size = int('size', f.size, 250);
          const txs = count > 0 ? Array.from({ length: count }, () => new Uint8Array(randomBytes(size))) : rest.map((s) => new TextEncoder().encode(s));
          if (txs.length === 0) throw new Error('nothing to submit: give transactions as arguments or --count N');
          await submit(client, txs, !f['no-wait'], f.timeout === undefined ? undefined : parseSeconds(f.timeout));
        }
      } finally {
        client.close();
      }
      return;
    }
    default:
      if (f.help) {
        console.log(USAGE);
        return;
      }
      process.exitCode = 2;
      console.error(`btcfed: unknown command "${cmd}"\n${USAGE}`);
  }
}

// `btcfed watch | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err; });

main().catch((err: unknown) => {
  // Usage errors (bad or unknown flags) exit 2; everything else 1, with the error's code when it has one.
  const code = (err as { code?: unknown }).code;
  const usage = typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
  // A gRPC error's text is its `details` (a string); a FedError's details are data, its text the message.
  const details = (err as { details?: unknown }).details;
  const message = typeof details === 'string' ? details : errorMessage(err);
  console.error(`btcfed: ${message}${typeof code === 'string' && !usage ? ` (${code})` : ''}${usage ? `\n${USAGE}` : ''}`);
  process.exitCode = usage ? 2 : 1;
});
