// The operator's multi-host set-up, end to end through the command line: four operators each run
// `btcfed member init` for their own member on their own "host" (127.0.0.1 … 127.0.0.4, with the
// signer on 127.0.1.1 … 127.0.1.4 — Linux routes all of 127/8 to loopback), one runs `btcfed
// genesis` from the four public cards, each runs `btcfed member join`. Then the signer dirs move
// to their own place and the CA keys away, and the federation runs from those dirs as 16 real
// processes over real gRPC with mutual TLS, libp2p and NATS: every service listens on its own
// member's address, and every client checks the certificate against the host it dials.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse, stringify } from 'yaml';
import { parseConfText, parseSignerConfText } from '#libs/config/index.ts';
import { txHash } from '#libs/crypto/index.ts';
import { call, createClient } from '#libs/rpc/index.ts';
import { memberSecurityFromDir } from '#libs/service/index.ts';
import { ConsensusServiceClient, TxStatus } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { consensusClient } from '../cli/client.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { initMember, joinMember, makeGenesis } from '../cli/member.ts';
import { NATS_URL } from './support/store.ts';
import { until } from './support/until.ts';
import { btcfedIn } from './support/cli.ts';
import { freePortBlock } from './support/ports.ts';
import { WARN_OR_WORSE, logTail } from './support/logs.ts';

const N = 4;
// Every member uses the same ten ports on its own address, as on separate machines. Below
// Linux's ephemeral range, and at offsets 85–94 of a hundred, which the devnet tests running
// beside it (20000 + 100·k + 0…69) never use.
const basePort = await freePortBlock(20_085, 120, { span: 15 });
const chainId = `mh-${randomBytes(3).toString('hex')}`;
const hostOf = (i: number) => `127.0.0.${i + 1}`;
const signerHostOf = (i: number) => `127.0.1.${i + 1}`;

let out: string;
let net_: Devnet | undefined;
const clients: ConsensusServiceClient[] = [];
const opened: grpc.Client[] = [];
const servers: net.Server[] = [];
let failed = false;

const memberDir = (i: number) => path.join(out, `m${i}`);
const signerDir = (i: number) => path.join(out, 'signer-hosts', `m${i}`);
/** Where signer host i reads its passphrase (a systemd credential in production), moved there apart from the signer dir. */
const passphraseOn = (i: number) => path.join(out, 'signer-hosts', `m${i}.passphrase`);

/** `btcfed ARGS` as an operator runs it, in the test's dir. */
const { ok, refused } = btcfedIn(() => out);

/** The subject alternative names of a PEM certificate: "IP:127.0.0.2", "DNS:localhost", … */
function sans(file: string): string[] {
  const alt = new X509Certificate(readFileSync(file)).subjectAltName ?? '';
  return alt.split(', ').map((s) => s.replace('IP Address:', 'IP:'));
}

/** The TCP addresses process `pid` listens on ("127.0.0.2:21005"), from /proc. */
function listening(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  const found: string[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9]!)) continue; // 0A = LISTEN
    const [hex, port] = f[1]!.split(':');
    const ip = [3, 2, 1, 0].map((k) => parseInt(hex!.slice(2 * k, 2 * k + 2), 16)).join('.');
    found.push(`${ip}:${parseInt(port!, 16)}`);
  }
  return found.sort();
}

/** A plain TCP relay on `from` to `to`: a path whose name is not the server's. */
async function relay(fromHost: string, to: { host: string; port: number }): Promise<number> {
  const server = net.createServer((c) => {
    const up = net.connect(to.port, to.host);
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, fromHost, resolve));
  return (server.address() as net.AddressInfo).port;
}

function step(name: string, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      throw err;
    }
  });
}

describe('four members on four hosts, set up by their own operators', { timeout: 240_000 }, () => {
  before(async () => {
    out = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mh-'));
  });
  after(async () => {
    for (const c of [...clients, ...opened]) c.close();
    for (const s of servers) s.close();
    await net_?.stop();
    if (failed) {
      for (let i = 0; i < N; i++) {
        for (const s of ['consensus', 'gateway', 'signer', 'store']) {
          for (const l of await logTail(path.join(memberDir(i), 'logs', `${s}.log`), (x) => WARN_OR_WORSE.test(x), 5, 300)) console.log(`[m${i}/${s}] ${l}`);
        }
      }
      console.log(`kept ${out}`);
    } else {
      await fs.rm(out, { recursive: true, force: true });
    }
  });

  step('member init: each operator makes their own member; the card is public, the certificates name its hosts', async () => {
    await Promise.all(Array.from({ length: N }, (_, i) => ok(['member', 'init', '--name', `m${i}`, '--out', memberDir(i), '--host', hostOf(i),
      '--signer-host', signerHostOf(i), '--base-port', String(basePort), '--nats', NATS_URL, '--passphrase-file', passphraseOn(i)])));
    for (let i = 0; i < N; i++) {
      const dir = memberDir(i);
      const cardText = await fs.readFile(path.join(dir, 'member-card.yaml'), 'utf8');
      const card = parse(cardText) as Record<string, any>;
      assert.deepEqual(Object.keys(card).sort(), ['libp2p', 'name', 'slh_dsa', 'version']);
      assert.deepEqual(Object.keys(card.libp2p).sort(), ['addresses', 'peer_id', 'public_key']);
      assert.deepEqual(card.libp2p.addresses, [`/ip4/${hostOf(i)}/tcp/${basePort + 5}`]);
      // No secret: not the libp2p private key, the signer's passphrase or sealed key, a TLS or CA key.
      const conf = parseConfText(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8'));
      // The passphrase is not in the signer dir: it travels to the signer host on its own.
      assert.ok(!readdirSync(path.join(dir, 'signer')).some((f) => /passphrase/.test(f)), 'no passphrase beside the sealed key');
      const secrets = [conf.node.private_key!, (await fs.readFile(path.join(dir, 'secrets', 'signer-passphrase'), 'utf8')).trim()];
      for (const f of ['signer/signer.key', 'tls/consensus-key.pem', 'tls/gateway-key.pem', 'signer/tls/key.pem', 'ca/ca-key.pem']) {
        const text = await fs.readFile(path.join(dir, f), 'utf8');
        secrets.push(...text.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----')).slice(0, 3));
      }
      for (const s of secrets) assert.ok(!cardText.includes(s), `m${i}'s card holds a secret (${s.slice(0, 12)}…)`);
      assert.doesNotMatch(cardText, /PRIVATE KEY|passphrase|private_key/i);
      assert.deepEqual(conf.validators, [], 'no validator set before join');
      // Services listen on the member's host; the signer is dialled on its own host.
      assert.equal(conf.services.consensus.listen, `${hostOf(i)}:${basePort + 2}`);
      assert.equal(conf.services.signer.address, `${signerHostOf(i)}:${basePort + 4}`);
      assert.equal(parseSignerConfText(await fs.readFile(path.join(dir, 'signer', 'signer.yaml'), 'utf8')).listen, `${signerHostOf(i)}:${basePort + 4}`);
      // Certificates: the member's host (and loopback names) for its services, the signer host for its signer.
      for (const role of ['store', 'gateway', 'consensus']) {
        const names = sans(path.join(dir, 'tls', `${role}.pem`));
        assert.ok(names.includes(`IP:${hostOf(i)}`), `m${i}'s ${role} certificate names ${hostOf(i)}: ${names.join(', ')}`);
        assert.ok(!names.includes(`IP:${signerHostOf(i)}`));
        for (let j = 1; j < N; j++) if (j !== i) assert.ok(!names.includes(`IP:${hostOf(j)}`), `m${i}'s ${role} certificate must not name m${j}'s host`);
      }
      const signerNames = sans(path.join(dir, 'signer', 'tls', 'cert.pem'));
      assert.ok(signerNames.includes(`IP:${signerHostOf(i)}`), signerNames.join(', '));
      if (i > 0) assert.ok(!signerNames.includes(`IP:${hostOf(i)}`), "the signer's certificate names the signer host only");
    }
  });

  step('genesis: the validator set from the cards in name order, with a digest; unsound sets refused by name', async () => {
    const cards = (idx: number[]) => idx.flatMap((i) => ['--card', path.join(memberDir(i), 'member-card.yaml')]);
    // Given in any order, sorted by name.
    const stdout = await ok(['genesis', '--chain-id', chainId, ...cards([2, 0, 3, 1]), '--out', path.join(out, 'genesis.yaml')]);
    const digest = /digest (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
    assert.ok(digest, stdout);
    const g = parse(await fs.readFile(path.join(out, 'genesis.yaml'), 'utf8')) as Record<string, any>;
    assert.equal(g.version, 1);
    assert.equal(g.digest, digest);
    assert.equal(g.chain_id, chainId);
    assert.deepEqual(g.members.map((m: { name: string }) => m.name), ['m0', 'm1', 'm2', 'm3']);
    // The same cards in another order: the same genesis, byte for byte.
    const again = await makeGenesis({ chainId, baseTimeout: '1s', cardFiles: [3, 2, 1, 0].map((i) => path.join(memberDir(i), 'member-card.yaml')), out: path.join(out, 'genesis-again.yaml') });
    assert.equal(again.digest, digest);
    assert.equal(await fs.readFile(path.join(out, 'genesis-again.yaml'), 'utf8'), await fs.readFile(path.join(out, 'genesis.yaml'), 'utf8'));

    const mixed = parse(await fs.readFile(path.join(memberDir(1), 'member-card.yaml'), 'utf8')) as Record<string, any>;
    mixed.slh_dsa.param_set = 'slh-dsa-sha2-128s';
    await fs.writeFile(path.join(out, 'mixed-card.yaml'), stringify(mixed));
    const file = (i: number) => path.join(memberDir(i), 'member-card.yaml');
    const attempt = (cardFiles: string[]) => makeGenesis({ chainId, baseTimeout: '1s', cardFiles, out: path.join(out, `refused-${randomBytes(4).toString('hex')}.yaml`) });
    await Promise.all([
      refused(['genesis', '--chain-id', chainId, ...cards([0, 1, 1]), '--out', path.join(out, 'dup.yaml')], /same name as .*m1/),
      assert.rejects(attempt([file(0), path.join(out, 'mixed-card.yaml')]), /mixed parameter sets: .*slh-dsa-sha2-128f.*mixed-card\.yaml uses slh-dsa-sha2-128s/),
      assert.rejects(attempt([]), /at least one --card/),
      assert.rejects(attempt([file(0), path.join(out, 'no-such-card.yaml')]), /no-such-card\.yaml: no such file/),
    ]);
  });

  step('member join refuses a genesis without the member, with another card of its name, or altered after it was made', async () => {
    const conf3 = await fs.readFile(path.join(memberDir(3), 'conf.yaml'), 'utf8');
    const card = (i: number) => path.join(memberDir(i), 'member-card.yaml');
    await makeGenesis({ chainId, baseTimeout: '1s', cardFiles: [0, 1, 2].map(card), out: path.join(out, 'without-m3.yaml') });
    // Another operator's m3 (fresh keys): the genesis is sound, but not this m3's.
    const other = path.join(out, 'impostor');
    await initMember({ name: 'm3', dir: other, hosts: [hostOf(3)], basePort, paramSet: 'slh-dsa-sha2-128f', natsUrls: [NATS_URL] });
    await makeGenesis({ chainId, baseTimeout: '1s', cardFiles: [...[0, 1, 2].map(card), path.join(other, 'member-card.yaml')], out: path.join(out, 'impostor.yaml') });
    // Tampered: m1's SLH-DSA key swapped for the impostor's, digest left as it was.
    const g = parse(await fs.readFile(path.join(out, 'genesis.yaml'), 'utf8')) as Record<string, any>;
    g.members[1].slh_dsa.public_key = (parse(await fs.readFile(path.join(other, 'member-card.yaml'), 'utf8')) as any).slh_dsa.public_key;
    await fs.writeFile(path.join(out, 'tampered.yaml'), stringify(g));
    await Promise.all([
      refused(['member', 'join', '--genesis', path.join(out, 'without-m3.yaml'), '--dir', memberDir(3)], /has no member named m3; its members are m0, m1, m2/),
      refused(['member', 'join', '--genesis', path.join(out, 'tampered.yaml'), '--dir', memberDir(3)], /does not match its content.*changed after btcfed genesis/),
      assert.rejects(joinMember({ genesisFile: path.join(out, 'impostor.yaml'), dir: memberDir(3) }), /card for m3 with libp2p peer id .* but this member's is/),
    ]);
    assert.equal(await fs.readFile(path.join(memberDir(3), 'conf.yaml'), 'utf8'), conf3, 'a refused join writes nothing');
  });

  step('member join completes each dir; again with the same genesis changes nothing; another genesis is refused', async () => {
    const genesis = path.join(out, 'genesis.yaml');
    const said = await Promise.all(Array.from({ length: N }, (_, i) => ok(['member', 'join', '--genesis', genesis, '--dir', memberDir(i)])));
    said.forEach((text, i) => assert.match(text, new RegExp(`joined: m${i} is validator ${i} of 4 on chain ${chainId}`)));
    for (let i = 0; i < N; i++) {
      const conf = parseConfText(await fs.readFile(path.join(memberDir(i), 'conf.yaml'), 'utf8'));
      assert.equal(conf.consensus.chain_id, chainId);
      assert.deepEqual(conf.validators.map((v) => v.name), ['m0', 'm1', 'm2', 'm3']);
      const peers = parse(await fs.readFile(path.join(memberDir(i), 'peers.yaml'), 'utf8')) as { peers: { addresses: string[] }[] };
      assert.deepEqual(peers.peers.flatMap((p) => p.addresses).sort(),
        Array.from({ length: N }, (_, j) => j).filter((j) => j !== i).map((j) => `/ip4/${hostOf(j)}/tcp/${basePort + 5}`).sort());
      const signer = parseSignerConfText(await fs.readFile(path.join(memberDir(i), 'signer', 'signer.yaml'), 'utf8'));
      assert.deepEqual(signer.validators, conf.validators);
      assert.equal(signer.chain_id, chainId);
    }
    const before = await fs.readFile(path.join(memberDir(0), 'conf.yaml'), 'utf8');
    assert.match(await ok(['member', 'join', '--genesis', genesis, '--dir', memberDir(0)]), /already joined/);
    assert.equal(await fs.readFile(path.join(memberDir(0), 'conf.yaml'), 'utf8'), before);
    await makeGenesis({ chainId: `${chainId}-b`, baseTimeout: '1s', cardFiles: Array.from({ length: N }, (_, i) => path.join(memberDir(i), 'member-card.yaml')), out: path.join(out, 'other-chain.yaml') });
    await assert.rejects(joinMember({ genesisFile: path.join(out, 'other-chain.yaml'), dir: memberDir(0) }), new RegExp(`already joined chain ${chainId} .*a member joins one genesis only`));
  });

  step('from those dirs, with signers on their own hosts and no CA key around, the federation commits; every service on its own address', async () => {
    // What each host gets: the signer host only <dir>/signer; the CA keys go offline.
    await fs.mkdir(path.join(out, 'signer-hosts'));
    await fs.mkdir(path.join(out, 'offline'));
    for (let i = 0; i < N; i++) {
      await fs.rename(path.join(memberDir(i), 'signer'), signerDir(i));
      await fs.rename(path.join(memberDir(i), 'secrets', 'signer-passphrase'), passphraseOn(i));
      await fs.rename(path.join(memberDir(i), 'ca'), path.join(out, 'offline', `m${i}`));
    }
    net_ = await runDevnet({ dir: out, members: N, basePort, natsUrl: NATS_URL, quiet: true, signerDirOf: signerDir });
    for (let i = 0; i < N; i++) clients.push(consensusClient(memberDir(i)));
    for (const p of net_.procs) {
      const i = Number(p.member.slice(1));
      const host = p.service === 'signer' ? signerHostOf(i) : hostOf(i);
      const addrs = listening(p.child.pid!);
      assert.ok(addrs.length > 0, `${p.member}/${p.service} listens`);
      for (const a of addrs) assert.ok(a.startsWith(`${host}:`), `${p.member}/${p.service} listens on ${a}, not on its host ${host}`);
    }
    const tx = new TextEncoder().encode(`multi-host-${randomBytes(6).toString('hex')}`);
    await call(clients[1]!.submitTransaction.bind(clients[1]!), { tx }, { deadlineMs: 10_000, waitForReady: true });
    await until('the transaction committed on every member', async () => {
      for (const c of clients) {
        const r = await call(c.getTransaction.bind(c), { txHash: txHash(tx), withProof: false }, { deadlineMs: 5000 });
        if (r.status !== TxStatus.TX_STATUS_COMMITTED) return undefined;
      }
      return true;
    }, 60_000);
    for (let i = 0; i < N; i++) {
      const s = await call(clients[i]!.getStatus.bind(clients[i]!), {}, { deadlineMs: 5000 });
      assert.equal(s.member, `m${i}`);
      assert.equal(s.selfIndex, i);
      assert.equal(s.chainId, chainId);
    }
    const connected = await until('m0 connected to the three others over libp2p at their card addresses', async () => {
      const p = (await call(clients[0]!.getStatus.bind(clients[0]!), {}, { deadlineMs: 5000 })).peers.filter((x) => x.state === 'connected');
      return p.length === N - 1 ? p : undefined;
    }, 20_000);
    assert.deepEqual(connected.map((p) => p.validatorIndex).sort(), [1, 2, 3]);
  });

  step('an observer on a host of its own: member init, member join --observer, and it follows the federation, listening on its own address only', async () => {
    const host = '127.0.0.9';
    const dir = path.join(out, 'o0');
    await ok(['member', 'init', '--name', 'o0', '--out', dir, '--host', host, '--base-port', String(basePort), '--nats', NATS_URL]);
    const genesis = path.join(out, 'genesis.yaml');
    await refused(['member', 'join', '--genesis', genesis, '--dir', dir], /has no member named o0/);
    await refused(['member', 'join', '--genesis', genesis, '--dir', memberDir(0), '--observer'], /validator m0 .*never as an observer/);
    assert.match(await ok(['member', 'join', '--observer', '--genesis', genesis, '--dir', dir]), new RegExp(`joined as an observer of chain ${chainId} \\(4 validators\\)`));
    const conf = parseConfText(await fs.readFile(path.join(dir, 'conf.yaml'), 'utf8'));
    assert.equal(conf.node.role, 'observer');
    assert.deepEqual(conf.validators.map((v) => v.name), ['m0', 'm1', 'm2', 'm3']);
    await fs.rm(path.join(dir, 'signer'), { recursive: true });
    await fs.rename(path.join(dir, 'ca'), path.join(out, 'offline', 'o0'));
    const observers = await runDevnet({ dir: out, members: 0, observers: 1, basePort, natsUrl: NATS_URL, quiet: true });
    try {
      for (const p of observers.procs) {
        for (const a of listening(p.child.pid!)) assert.ok(a.startsWith(`${host}:`), `o0/${p.service} listens on ${a}, not on its host ${host}`);
      }
      const o0 = consensusClient(dir);
      clients.push(o0);
      const target = Number((await call(clients[0]!.getStatus.bind(clients[0]!), {}, { deadlineMs: 5000 })).committedHeight);
      const s = await until('o0 to follow to m0\'s height', async () => {
        const x = await call(o0.getStatus.bind(o0), {}, { deadlineMs: 5000 });
        return Number(x.committedHeight) >= target ? x : undefined;
      }, 60_000);
      assert.equal(s.observer, true);
      const theirs = await call(clients[0]!.getBlock.bind(clients[0]!), { by: { $case: 'height', value: target } }, { deadlineMs: 5000 });
      const ours = await call(o0.getBlock.bind(o0), { by: { $case: 'height', value: target } }, { deadlineMs: 5000 });
      assert.deepEqual(ours.blockHash, theirs.blockHash);
    } finally {
      await observers.stop();
    }
  });

  step("a client checks the dialled name: m2's server (a certificate for 127.0.0.3) reached through 127.0.0.2 is refused", async () => {
    const target = { host: hostOf(2), port: basePort + 2 };
    const security = memberSecurityFromDir(memberDir(2), 'client').client;
    const status = (address: string) => {
      const c = createClient(ConsensusServiceClient, address, { security });
      opened.push(c);
      return call(c.getStatus.bind(c), {}, { deadlineMs: 5000 });
    };
    // The same relay on m2's own address works: only the name differs below.
    const same = await relay(hostOf(2), target);
    assert.equal((await status(`${hostOf(2)}:${same}`)).member, 'm2');
    const elsewhere = await relay(hostOf(1), target);
    await assert.rejects(status(`${hostOf(1)}:${elsewhere}`), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAVAILABLE, e.details);
      assert.match(e.details, /127\.0\.0\.2|altname|IP/i);
      return true;
    });
  });
});

test('member init: --listen-all listens everywhere but advertises and certifies the names; bad hosts are refused by flag', async () => {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-mh-flags-'));
  try {
    const m = await initMember({ name: 'edge', dir: path.join(tmp, 'edge'), hosts: ['203.0.113.7', 'edge.fed.example'], basePort: 7100,
      paramSet: 'slh-dsa-sha2-128f', natsUrls: ['tls://10.0.9.1:4222', 'tls://10.0.9.2:4222'], listenAll: true });
    const conf = parseConfText(await fs.readFile(path.join(m.dir, 'conf.yaml'), 'utf8'));
    assert.equal(conf.services.consensus.listen, '0.0.0.0:7102');
    assert.deepEqual(conf.network.addresses, ['/ip4/0.0.0.0/tcp/7105']);
    assert.equal(conf.services.signer.address, '127.0.0.1:7104', 'the signer on this host is dialled on loopback (the public name may be none of its interfaces), never at a wildcard');
    const apart = await initMember({ name: 'edge2', dir: path.join(tmp, 'edge2'), hosts: ['203.0.113.8'], signerHosts: ['10.0.1.8'], basePort: 7100,
      paramSet: 'slh-dsa-sha2-128f', natsUrls: [NATS_URL], listenAll: true });
    assert.equal(parseConfText(await fs.readFile(path.join(apart.dir, 'conf.yaml'), 'utf8')).services.signer.address, '10.0.1.8:7104', 'a signer host apart is dialled by its name');
    assert.deepEqual(conf.nats.servers, ['tls://10.0.9.1:4222', 'tls://10.0.9.2:4222']);
    assert.deepEqual(m.card.libp2p.addresses, ['/ip4/203.0.113.7/tcp/7105', '/dns4/edge.fed.example/tcp/7105']);
    assert.match(await fs.readFile(path.join(m.dir, 'systemd.env'), 'utf8'), /^BTCFED_STORE=127\.0\.0\.1:7100$/m);
    const names = sans(path.join(m.dir, 'tls', 'consensus.pem'));
    for (const n of ['IP:203.0.113.7', 'DNS:edge.fed.example', 'DNS:localhost', 'IP:127.0.0.1']) assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
    for (const [hosts, re] of [[['0.0.0.0'], /--host 0\.0\.0\.0: a wildcard/], [['no such host'], /neither an IP address nor a DNS name/], [[], /--host is required/]] as const) {
      await assert.rejects(initMember({ name: 'x', dir: path.join(tmp, `x-${randomBytes(3).toString('hex')}`), hosts, basePort: 7100, paramSet: 'slh-dsa-sha2-128f', natsUrls: [NATS_URL] }), re);
    }
    await assert.rejects(initMember({ name: 'edge', dir: m.dir, hosts: ['10.0.0.1'], basePort: 7100, paramSet: 'slh-dsa-sha2-128f', natsUrls: [NATS_URL] }), /is not empty; refusing to overwrite/);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
});
