// The store as a real process: real files, real gRPC, real NATS.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse, stringify } from 'yaml';
import { generateIdentity, parseConfObject, type Identity } from '#libs/config/index.ts';
import { ConfigRejected, ConfigReloaded, PeersChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { WatchConfigResponse } from '#libs/gen/btcfed/v1/store.pb.ts';
import { makeMember, type TestMember } from './support/member.ts';
import { call, recordEvents, startStore, type RunningStore } from './support/store.ts';
import { startService } from './support/process.ts';

const subj = (m: TestMember, event: string) => `btcfed.${m.name}.store.${event}`;
const backups = async (m: TestMember, prefix: string) => (await fs.readdir(m.dir)).filter((f) => f.startsWith(prefix)).sort();

describe('store: start-up', () => {
  test('generates a missing libp2p key, writes it back keeping comments, and serves it only on request', async () => {
    const m = await makeMember({ withKey: false });
    const s = await startStore(m);
    try {
      const text = await fs.readFile(m.confPath, 'utf8');
      assert.match(text, /^# test member/);
      const written = parse(text) as { node: { private_key?: string } };
      assert.ok(written.node.private_key, 'private key written back');
      const { snapshot } = await call(s.client.getConfig.bind(s.client), { includePrivateKey: false });
      assert.equal(snapshot!.member, m.name);
      assert.equal(snapshot!.version, 1);
      const conf = parseConfObject(JSON.parse(snapshot!.confJson));
      assert.equal(conf.node.private_key, undefined, 'redacted by default');
      const withKey = await call(s.client.getConfig.bind(s.client), { includePrivateKey: true });
      assert.equal(parseConfObject(JSON.parse(withKey.snapshot!.confJson)).node.private_key, written.node.private_key);
      const stat = await fs.stat(m.confPath);
      assert.equal(stat.mode & 0o077, 0, 'conf.yaml holding a key is not readable by others');
    } finally {
      await s.close();
      await m.cleanup();
    }
  });

  test('an invalid conf.yaml stops the start with an error naming file and field, and the file is untouched', async () => {
    const m = await makeMember();
    const bad = (await fs.readFile(m.confPath, 'utf8')).replace('level: debug', 'level: loud');
    await fs.writeFile(m.confPath, bad);
    const svc = startService('services/store/main.ts', ['--data-dir', m.dir, '--listen', '127.0.0.1:0', '--no-nats']);
    try {
      assert.equal(await svc.exited, 1);
      const fatal = svc.lines.find((l) => l.level === 60);
      assert.ok(fatal, 'a fatal line');
      assert.match(String(fatal.msg), /conf\.yaml: logging\.level: /);
      assert.equal(fatal.code, 'CONFIG_INVALID');
      assert.equal(await fs.readFile(m.confPath, 'utf8'), bad);
    } finally {
      await m.cleanup();
    }
  });

  test('a bad flag is refused with the usage', async () => {
    const svc = startService('services/store/main.ts', ['--data-dir', '/nonexistent', '--listn', 'x']);
    assert.equal(await svc.exited, 1);
    assert.match(String(svc.lines.find((l) => l.level === 60)?.msg), /listn[\s\S]*usage: store/);
  });

  test('a corrupt peers.yaml at start is moved aside and the last good copy restored', async () => {
    const other = await generateIdentity();
    const m = await makeMember({ peers: [other] });
    let s = await startStore(m, ['--no-nats']);
    await s.close();
    const good = await fs.readFile(m.peersPath, 'utf8');
    const corrupt = good.slice(0, Math.floor(good.length / 2)) + '\n  - : [oops';
    await fs.writeFile(m.peersPath, corrupt);
    s = await startStore(m, ['--no-nats']);
    try {
      const [backup] = await backups(m, 'peers.yaml.corrupt-');
      assert.ok(backup, 'backup made');
      assert.equal(await fs.readFile(path.join(m.dir, backup), 'utf8'), corrupt, 'the corrupt content is kept');
      const { peers } = await call(s.client.listPeers.bind(s.client), {});
      assert.deepEqual(peers.map((p) => p.peerId), [other.peerId]);
    } finally {
      await s.close();
      await m.cleanup();
    }
  });

  test('a corrupt peers.yaml with no usable last good copy stops the start, naming the file and field, and the file is untouched', async () => {
    const other = await generateIdentity();
    const m = await makeMember({ peers: [other] });
    const broken = (await fs.readFile(m.peersPath, 'utf8')).replace(/public_key: \S+/, 'public_key: not-base64-at-all');
    assert.notEqual(broken, await fs.readFile(m.peersPath, 'utf8'));
    await fs.writeFile(m.peersPath, broken);
    const svc = startService('services/store/main.ts', ['--data-dir', m.dir, '--listen', '127.0.0.1:0', '--no-nats']);
    try {
      assert.equal(await svc.exited, 1);
      const fatal = svc.lines.find((l) => l.level === 60);
      assert.equal(fatal?.code, 'PEERS_INVALID');
      assert.match(String(fatal?.msg), /peers\.yaml: peers\.0\.public_key: .*no usable last good copy/);
      assert.equal(await fs.readFile(m.peersPath, 'utf8'), broken, 'left as it was, for the operator to fix');
      assert.deepEqual(await backups(m, 'peers.yaml.corrupt-'), [], 'not moved aside');
    } finally {
      await m.cleanup();
    }
  });

  test('a service writes its compile cache once started, so a kill -9 still leaves it for the restart', async () => {
    const m = await makeMember();
    const cache = await fs.mkdtemp(path.join(m.dir, 'compile-cache-'));
    const svc = startService('services/store/main.ts', ['--data-dir', m.dir, '--listen', '127.0.0.1:0', '--no-nats'], { NODE_COMPILE_CACHE: cache });
    try {
      await svc.waitFor((l) => l.msg === 'store ready');
      svc.proc.kill('SIGKILL');
      await svc.exited;
      const files = (await fs.readdir(cache, { recursive: true })).length;
      assert.ok(files > 100, `the store's modules are in the cache after a kill -9 (${files} entries)`);
    } finally {
      await m.cleanup();
    }
  });

  test('a second store on the same data dir refuses to start', async () => {
    const m = await makeMember();
    const s = await startStore(m, ['--no-nats']);
    try {
      const svc = startService('services/store/main.ts', ['--data-dir', m.dir, '--listen', '127.0.0.1:0', '--no-nats']);
      assert.equal(await svc.exited, 1);
      assert.equal(svc.lines.find((l) => l.level === 60)?.code, 'STORE_LOCKED');
    } finally {
      await s.close();
      await m.cleanup();
    }
  });
});

describe('store: running', () => {
  let m: TestMember;
  let s: RunningStore;
  let reloaded: Awaited<ReturnType<typeof recordEvents<ConfigReloaded>>>;
  let rejected: Awaited<ReturnType<typeof recordEvents<ConfigRejected>>>;
  let changed: Awaited<ReturnType<typeof recordEvents<PeersChanged>>>;
  const ids: Identity[] = [];

  before(async () => {
    for (let i = 0; i < 3; i++) ids.push(await generateIdentity());
    m = await makeMember({ peers: [ids[0]!] });
    reloaded = await recordEvents(subj(m, 'config.reloaded'), (b) => ConfigReloaded.decode(b));
    rejected = await recordEvents(subj(m, 'config.rejected'), (b) => ConfigRejected.decode(b));
    changed = await recordEvents(subj(m, 'peers.changed'), (b) => PeersChanged.decode(b));
    s = await startStore(m);
  });
  after(async () => {
    await s.close();
    await Promise.all([reloaded.close(), rejected.close(), changed.close()]);
    await m.cleanup();
  });

  const version = async () => (await call(s.client.getConfig.bind(s.client), { includePrivateKey: false })).snapshot!.version;

  test('UpsertPeers validates, merges duplicates, leaves out self and publishes peers.changed', async () => {
    const upsert = s.client.upsertPeers.bind(s.client);
    const before = changed.seen.length;
    const res = await call(upsert, { peers: [
      { publicKey: ids[1]!.publicKey, peerId: '', addresses: ['/ip4/10.1.1.1/tcp/4001'], lastSeenMs: 1000 },
      { publicKey: ids[1]!.publicKey, peerId: ids[1]!.peerId, addresses: ['/dns4/n1.example/tcp/4001'], lastSeenMs: 2000 },
      { publicKey: m.identity.publicKey, peerId: '', addresses: ['/ip4/10.9.9.9/tcp/1'], lastSeenMs: 0 },
    ] });
    assert.deepEqual({ added: res.added, ignoredSelf: res.ignoredSelf }, { added: 1, ignoredSelf: 1 });
    const { peers } = await call(s.client.listPeers.bind(s.client), {});
    const p1 = peers.find((p) => p.peerId === ids[1]!.peerId)!;
    assert.deepEqual(p1.addresses.sort(), ['/dns4/n1.example/tcp/4001', '/ip4/10.1.1.1/tcp/4001']);
    assert.equal(p1.lastSeenMs, 2000);
    assert.ok(!peers.some((p) => p.peerId === m.identity.peerId));
    const ev = await changed.next((e) => e.data.added.includes(ids[1]!.peerId), 5000, before);
    assert.equal(ev.data.version, res.version);
    // and it is on disk
    assert.match(await fs.readFile(m.peersPath, 'utf8'), new RegExp(ids[1]!.publicKey.replace(/[+/]/g, '.')));
  });

  test('UpsertPeers with one bad entry is refused whole, naming entry and field', async () => {
    const v = await version();
    const cases: Array<[object, RegExp]> = [
      [{ publicKey: ids[2]!.publicKey, addresses: ['/ip4/1.2.3.4/udp/1'] }, /peers\[1\]\.addresses\[0\]: .*tcp/],
      [{ publicKey: 'bm90IGEga2V5', addresses: [] }, /peers\[1\]\.public_key: /],
      [{ publicKey: ids[2]!.publicKey, addresses: [`/ip4/1.2.3.4/tcp/1/p2p/${ids[0]!.peerId}`] }, /is not this peer/],
      [{ publicKey: ids[2]!.publicKey, peerId: ids[0]!.peerId, addresses: [] }, /peers\[1\]\.peer_id/],
    ];
    for (const [bad, reason] of cases) {
      await assert.rejects(
        call(s.client.upsertPeers.bind(s.client), { peers: [
          { publicKey: ids[2]!.publicKey, peerId: '', addresses: ['/ip4/10.2.2.2/tcp/1'], lastSeenMs: 0 },
          { peerId: '', lastSeenMs: 0, ...bad } as never,
        ] }),
        (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT && reason.test(err.details),
      );
    }
    assert.equal(await version(), v, 'nothing applied');
    const { peers } = await call(s.client.listPeers.bind(s.client), {});
    assert.ok(!peers.some((p) => p.peerId === ids[2]!.peerId));
  });

  test('RemovePeer by key or id', async () => {
    const r = await call(s.client.removePeer.bind(s.client), { peerId: '', publicKey: ids[1]!.publicKey });
    assert.equal(r.removed, true);
    const again = await call(s.client.removePeer.bind(s.client), { peerId: ids[1]!.peerId, publicKey: '' });
    assert.equal(again.removed, false);
    await assert.rejects(call(s.client.removePeer.bind(s.client), { peerId: '', publicKey: '' }),
      (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT);
  });

  test('SIGHUP with a broken conf.yaml keeps the old config and publishes config.rejected', async () => {
    const v = await version();
    const good = await fs.readFile(m.confPath, 'utf8');
    const broken = good.replace(/exchange_interval: .*/, 'exchange_interval: whenever');
    await fs.writeFile(m.confPath, broken);
    const from = rejected.seen.length;
    s.svc.proc.kill('SIGHUP');
    const ev = await rejected.next(() => true, 5000, from);
    assert.equal(ev.data.field, 'peers.exchange_interval');
    assert.match(ev.data.reason, /duration/);
    assert.equal(ev.data.keptVersion, v);
    assert.equal(await version(), v);
    const { snapshot } = await call(s.client.getConfig.bind(s.client), { includePrivateKey: false });
    assert.equal(parseConfObject(JSON.parse(snapshot!.confJson)).peers.exchange_interval, 30_000);
    assert.ok(ev.data.backupPath && (await fs.readFile(ev.data.backupPath, 'utf8')) === broken, 'rejected file copied aside');
    await fs.writeFile(m.confPath, good);
    s.svc.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
  });

  test('a live edit of the chain id or the validator set is refused whole, naming the field; the running config stays', async () => {
    const v = await version();
    const good = await fs.readFile(m.confPath, 'utf8');
    const from = rejected.seen.length;
    await fs.writeFile(m.confPath, `${good}consensus:\n  chain_id: another-chain\n`);
    s.svc.proc.kill('SIGHUP');
    const ev = await rejected.next(() => true, 5000, from);
    assert.equal(ev.data.field, 'consensus.chain_id');
    assert.match(ev.data.reason, /cannot change while the member runs/);
    assert.equal(await version(), v, 'nothing new served');
    await fs.writeFile(m.confPath, good);
    s.svc.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
  });

  test('a valid edit is seen by a WatchConfig subscriber and announced as config.reloaded', async () => {
    const stream = s.client.watchConfig({ includePrivateKey: false, afterVersion: 0 });
    const got: WatchConfigResponse[] = [];
    const firstTwo = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: WatchConfigResponse) => { got.push(r); if (got.length === 2) resolve(); });
      stream.on('error', (e: grpc.ServiceError) => { if (e.code !== grpc.status.CANCELLED) reject(e); });
    });
    await new Promise((r) => setTimeout(r, 200));
    const text = (await fs.readFile(m.confPath, 'utf8')).replace(/exchange_interval: .*/, 'exchange_interval: 45s');
    const from = reloaded.seen.length;
    await fs.writeFile(m.confPath, text); // no signal: the file watch must notice
    await firstTwo;
    stream.cancel();
    assert.ok(got[1]!.snapshot!.version > got[0]!.snapshot!.version);
    assert.equal(parseConfObject(JSON.parse(got[1]!.snapshot!.confJson)).peers.exchange_interval, 45_000);
    const ev = await reloaded.next((e) => e.data.changedFiles.includes('conf.yaml'), 5000, from);
    assert.equal(ev.data.version, got[1]!.snapshot!.version);
    assert.ok(ev.data.durationSeconds < 2, `reload took ${ev.data.durationSeconds}s`);
  });

  test('a SIGHUP storm coalesces and the store stays up', async () => {
    const from = reloaded.seen.length;
    const text = (await fs.readFile(m.confPath, 'utf8')).replace(/exchange_interval: .*/, 'exchange_interval: 50s');
    await fs.writeFile(m.confPath, text);
    for (let i = 0; i < 100; i++) s.svc.proc.kill('SIGHUP');
    await reloaded.next((e) => e.data.changedFiles.includes('conf.yaml'), 5000, from);
    await new Promise((r) => setTimeout(r, 500));
    const reloads = reloaded.seen.length - from;
    assert.ok(reloads >= 1 && reloads <= 2, `one change → at most two reloads, saw ${reloads}`);
    assert.equal(s.svc.proc.exitCode, null);
    const { snapshot } = await call(s.client.getConfig.bind(s.client), { includePrivateKey: false });
    assert.equal(parseConfObject(JSON.parse(snapshot!.confJson)).peers.exchange_interval, 50_000);
  });

  test('a truncated peers.yaml at run time is moved aside, rewritten, and nothing is lost', async () => {
    const { peers: before } = await call(s.client.listPeers.bind(s.client), {});
    const good = await fs.readFile(m.peersPath, 'utf8');
    const from = rejected.seen.length;
    await fs.writeFile(m.peersPath, good.slice(0, Math.floor(good.length * 0.6)) + ' - [');
    const ev = await rejected.next((e) => e.data.file.endsWith('peers.yaml'), 5000, from);
    assert.ok(ev.data.backupPath.includes('peers.yaml.corrupt-'));
    await new Promise((r) => setTimeout(r, 200));
    const { peers: now } = await call(s.client.listPeers.bind(s.client), {});
    assert.deepEqual(now.map((p) => p.peerId).sort(), before.map((p) => p.peerId).sort());
    const onDisk = parse(await fs.readFile(m.peersPath, 'utf8')) as { peers: unknown[] };
    assert.equal(onDisk.peers.length, before.length);
  });

  test('concurrent UpsertPeers from several clients while the file is edited by hand keep every peer', async (t) => {
    const apiPeers: Identity[] = [];
    const handPeers: Identity[] = [];
    for (let i = 0; i < 40; i++) apiPeers.push(await generateIdentity());
    for (let i = 0; i < 10; i++) handPeers.push(await generateIdentity());
    const clients = [0, 1, 2, 3].map(() => new (s.client.constructor as typeof import('#libs/gen/btcfed/v1/store.pb.ts').StoreServiceClient)(
      `127.0.0.1:${s.port}`, grpc.credentials.createInsecure()));
    const api = Promise.all(clients.map(async (c, ci) => {
      for (let i = ci; i < apiPeers.length; i += clients.length) {
        await call(c.upsertPeers.bind(c), { peers: [{ publicKey: apiPeers[i]!.publicKey, peerId: '', addresses: [`/ip4/10.3.0.${i}/tcp/4001`], lastSeenMs: 0 }] });
      }
    }));
    const hand = (async () => {
      for (const [i, p] of handPeers.entries()) {
        // an editor: read, add one entry, think a while (the API writes meanwhile, so the save is
        // of a stale copy), save — in place (odd ones, as a script would) or by renaming a new file
        // over the old one (even ones, as vim, emacs and most editors do). The think times vary:
        // see docs/store.md for the one race no file protocol can close.
        const doc = (parse(await fs.readFile(m.peersPath, 'utf8')) ?? {}) as { peers?: unknown[] };
        (doc.peers ??= []).push({ public_key: p.publicKey, addresses: [`/ip4/10.4.0.${i}/tcp/4001`] });
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
        if (i % 2 === 1) {
          await fs.writeFile(m.peersPath, stringify(doc));
        } else {
          await fs.writeFile(`${m.peersPath}.swp`, stringify(doc));
          await fs.rename(`${m.peersPath}.swp`, m.peersPath);
        }
        await new Promise((r) => setTimeout(r, 30 + Math.random() * 120));
      }
    })();
    await Promise.all([api, hand]);
    clients.forEach((c) => c.close());
    const want = [...apiPeers, ...handPeers].map((p) => p.peerId);
    let missing: string[] = want;
    for (let i = 0; i < 50 && missing.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const { peers } = await call(s.client.listPeers.bind(s.client), {});
      const have = new Set(peers.map((p) => p.peerId));
      missing = want.filter((id) => !have.has(id));
    }
    const handIds = new Set(handPeers.map((p) => p.peerId));
    // The one race docs/store.md names: a hand save that lands between an API write's last check
    // and its rename is replaced unseen — an in-place save (odd entries) that opened the file just
    // before the rename, or, rarely, a renamed save (even entries) made in that gap, which a
    // loaded machine widens when it deschedules the store between the two system calls (seen
    // once in CI). At most one hand save may be lost; an API write never is.
    const lostToRace = missing.filter((id) => handIds.has(id));
    assert.ok(lostToRace.length <= 1, `more than the one documented race lost: ${lostToRace.join(', ')}`);
    if (lostToRace.length > 0) t.diagnostic(`a hand save lost to the documented race: ${lostToRace[0]}`);
    missing = missing.filter((id) => !handIds.has(id));
    assert.deepEqual(missing.map((id) => (handIds.has(id) ? 'hand:' : 'api:') + id), [], 'every peer kept in memory');
    const onDisk = parse(await fs.readFile(m.peersPath, 'utf8')) as { peers: Array<{ public_key: string }> };
    const diskKeys = new Set(onDisk.peers.map((p) => p.public_key));
    assert.deepEqual([...apiPeers, ...handPeers].filter((p) => !diskKeys.has(p.publicKey) && !lostToRace.includes(p.peerId)).map((p) => p.peerId), [], 'and on disk');
  });
});

describe('store: outside clients', () => {
  test('a client built at run time from the .proto files (proto-loader) calls the store, and health answers', async () => {
    const protoLoader = await import('@grpc/proto-loader');
    const { PROTO_ROOT } = await import('#libs/rpc/index.ts');
    const other = await generateIdentity();
    const m = await makeMember({ peers: [other] });
    const s = await startStore(m, ['--no-nats', '--metrics', '127.0.0.1:0']);
    const def = protoLoader.loadSync(['btcfed/v1/store.proto'], { includeDirs: [PROTO_ROOT], keepCase: true, longs: Number, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as any;
    const client = new pkg.btcfed.v1.StoreService(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
    const unary = (method: string, req: object) => new Promise<any>((resolve, reject) =>
      client[method](req, { deadline: new Date(Date.now() + 5000) }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
    try {
      const cfg = await unary('GetConfig', {});
      assert.equal(cfg.snapshot.member, m.name);
      assert.equal(JSON.parse(cfg.snapshot.conf_json).node.name, m.name);
      const peers = await unary('ListPeers', {});
      assert.deepEqual(peers.peers.map((p: { peer_id: string }) => p.peer_id), [other.peerId]);
      await assert.rejects(unary('UpsertPeers', { peers: [{ public_key: 'garbage', addresses: [] }] }),
        (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT && /public_key/.test(err.details));

      const healthDef = protoLoader.loadSync(path.join(import.meta.dirname, '../node_modules/grpc-health-check/proto/health/v1/health.proto'), { keepCase: true, enums: String });
      const health = new (grpc.loadPackageDefinition(healthDef) as any).grpc.health.v1.Health(`127.0.0.1:${s.port}`, grpc.credentials.createInsecure());
      const status = await new Promise<any>((resolve, reject) =>
        health.Check({ service: 'btcfed.v1.StoreService' }, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
      assert.equal(status.status, 'SERVING');
      health.close();

      const ready = await s.svc.waitFor((l) => l.msg === 'store ready');
      const text = await (await fetch(`http://127.0.0.1:${ready.metricsPort as number}/metrics`)).text();
      assert.match(text, /btcfed_store_config_version\{[^}]*\} 1/);
      assert.match(text, /btcfed_store_rejected_requests_total\{[^}]*method="UpsertPeers",code="PEER_INVALID"[^}]*\} 1/);
    } finally {
      client.close();
      await s.close();
      await m.cleanup();
    }
  });
});
