// Least privilege from `btcfed init`, on real processes over real gRPC with mutual TLS: each
// member its own CA, each service its own certificate; the signer answers only its member's
// consensus certificate, the store hands the libp2p key only to the gateway's, the gateway's
// Attach stream is consensus's alone, and devnet never recreates a lost signer state.
// Member m0 runs (store, signer, gateway, consensus); m1 is made by the same init, and only its
// certificates are used, as another member's would be.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { call, createClient, errorCodeOf, type ClientSecurity } from '#libs/rpc/index.ts';
import { parseConfObject } from '#libs/config/index.ts';
import type { ServiceRole } from '#libs/service/index.ts';
import { SignerServiceClient } from '#libs/gen/btcfed/v1/signer.pb.ts';
import { StoreServiceClient, type WatchConfigResponse } from '#libs/gen/btcfed/v1/store.pb.ts';
import { GatewayServiceClient } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { AdminServiceClient, ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { initFederation, memberPorts } from '../cli/init.ts';
import { runDevnet, type Devnet } from '../cli/devnet.ts';
import { FRESH_MARKER } from '../cli/fresh.ts';
import { NATS_URL } from './support/store.ts';
import { freePortBlock } from './support/ports.ts';

const basePort = await freePortBlock(20_050, 120, { span: 50 });
const ports = memberPorts(basePort, 0);
let dir: string;
let net: Devnet | undefined;
const opened: grpc.Client[] = [];

/** Files of `member`'s certificate for `role`, trusting m0's CA (the servers under test are m0's). */
function as(member: 'm0' | 'm1', role: ServiceRole): ClientSecurity {
  const tls = path.join(dir, member, 'tls');
  return { mode: 'mtls', caFile: path.join(dir, 'm0', 'tls', 'ca.pem'), certFile: path.join(tls, `${role}.pem`), keyFile: path.join(tls, `${role}-key.pem`), serverName: 'localhost' };
}

function client<C extends grpc.Client>(Ctor: new (a: string, c: grpc.ChannelCredentials, o?: Partial<grpc.ClientOptions>) => C, port: number, security: ClientSecurity): C {
  const c = createClient(Ctor, `127.0.0.1:${port}`, { security });
  opened.push(c);
  return c;
}

/** Refused: by the TLS handshake (UNAVAILABLE: the certificate is not this member's or not for a client) or by the server. */
function refused(codes: grpc.status[]) {
  return (e: grpc.ServiceError) => {
    assert.ok(codes.includes(e.code), `expected ${codes.map((c) => grpc.status[c]).join('|')}, got ${grpc.status[e.code]}: ${e.details}`);
    return true;
  };
}

const signerPublicKey = (security: ClientSecurity) => {
  const c = client(SignerServiceClient, ports.signer, security);
  return call(c.getPublicKey.bind(c), {}, { deadlineMs: 5000 });
};

async function metric(port: number, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('least privilege from btcfed init', { timeout: 300_000 }, () => {
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'btcfed-lp-'));
    await initFederation({ members: 2, out: dir, basePort, chainId: `lp-${randomBytes(3).toString('hex')}`, paramSet: 'slh-dsa-sha2-128f',
      baseTimeout: '1s', logFormat: 'json', natsUrl: NATS_URL });
    net = await runDevnet({ dir, members: 1, basePort, natsUrl: NATS_URL, quiet: true });
  });
  after(async () => {
    for (const c of opened) c.close();
    await net?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('each member has its own CA, kept outside the member dirs; each service its own certificate', async () => {
    const m0ca = await fs.readFile(path.join(dir, 'm0', 'tls', 'ca.pem'), 'utf8');
    assert.notEqual(m0ca, await fs.readFile(path.join(dir, 'm1', 'tls', 'ca.pem'), 'utf8'));
    assert.equal(m0ca, await fs.readFile(path.join(dir, 'ca', 'm0', 'ca.pem'), 'utf8'));
    const found = (await fs.readdir(path.join(dir, 'm0'), { recursive: true })).filter((f) => String(f).includes('ca-key'));
    assert.deepEqual(found, [], 'no CA key in a member dir');
    const certs = await Promise.all(['store', 'gateway', 'consensus', 'operator', 'client'].map((r) => fs.readFile(path.join(dir, 'm0', 'tls', `${r}.pem`), 'utf8')));
    assert.equal(new Set(certs).size, certs.length);
  });

  test("m0's signer answers m0's consensus certificate", async () => {
    const id = await signerPublicKey(as('m0', 'consensus'));
    assert.equal(id.member, 'm0');
  });

  test("m0's signer refuses m1's consensus certificate", async () => {
    await assert.rejects(signerPublicKey(as('m1', 'consensus')), refused([grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED]));
  });

  test("m0's signer refuses m0's own gateway, store, operator and client certificates", async () => {
    await assert.rejects(signerPublicKey(as('m0', 'gateway')), refused([grpc.status.PERMISSION_DENIED]));
    await assert.rejects(signerPublicKey(as('m0', 'operator')), refused([grpc.status.PERMISSION_DENIED]));
    await assert.rejects(signerPublicKey(as('m0', 'client')), refused([grpc.status.PERMISSION_DENIED]));
    // The store's certificate is for serving only (no clientAuth): the handshake itself fails.
    await assert.rejects(signerPublicKey(as('m0', 'store')), refused([grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED]));
  });

  test("the store gives the libp2p private key to m0's gateway certificate only; others are refused and counted", async () => {
    const getConfig = (security: ClientSecurity, includePrivateKey: boolean) => {
      const c = client(StoreServiceClient, ports.store, security);
      return call(c.getConfig.bind(c), { includePrivateKey }, { deadlineMs: 5000 });
    };
    const key = (r: Awaited<ReturnType<typeof getConfig>>) => parseConfObject(JSON.parse(r.snapshot!.confJson)).node.private_key;
    assert.ok(key(await getConfig(as('m0', 'gateway'), true)), 'the gateway gets the key');
    assert.equal(key(await getConfig(as('m0', 'consensus'), false)), undefined, 'consensus gets the config without it');
    const before = await metric(ports.storeMetrics, 'btcfed_store_rejected_requests_total', 'method="GetConfig",code="STORE_PRIVATE_KEY_REFUSED"');
    for (const role of ['consensus', 'operator'] as const) {
      await assert.rejects(getConfig(as('m0', role), true), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.PERMISSION_DENIED);
        assert.equal(errorCodeOf(e), 'STORE_PRIVATE_KEY_REFUSED');
        assert.match(e.details, new RegExp(`only for m0-gateway, not m0-${role}`));
        return true;
      });
    }
    assert.equal(await metric(ports.storeMetrics, 'btcfed_store_rejected_requests_total', 'method="GetConfig",code="STORE_PRIVATE_KEY_REFUSED"'), before + 2);
    await assert.rejects(getConfig(as('m0', 'client'), false), refused([grpc.status.PERMISSION_DENIED]));
    await assert.rejects(getConfig(as('m1', 'gateway'), true), refused([grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED]));

    // The same through WatchConfig.
    const c = client(StoreServiceClient, ports.store, as('m0', 'consensus'));
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const st = c.watchConfig({ includePrivateKey: true, afterVersion: 0 });
      st.on('data', (r: WatchConfigResponse) => resolve({ code: grpc.status.OK, details: `got version ${r.snapshot?.version}`, metadata: new grpc.Metadata() }));
      st.on('error', (e: grpc.ServiceError) => resolve(e));
    });
    assert.equal(status.code, grpc.status.PERMISSION_DENIED, status.details);
  });

  test("the store's write API takes the member's gateway and operator only", async () => {
    const remove = (security: ClientSecurity) => {
      const c = client(StoreServiceClient, ports.store, security);
      return call(c.removePeer.bind(c), { peerId: '12D3KooWAg4yqLBhJoqegqBBkztYTkN8nMNcHrKuyaaiCc8aXADr', publicKey: '' }, { deadlineMs: 5000 });
    };
    await assert.rejects(remove(as('m0', 'consensus')), refused([grpc.status.PERMISSION_DENIED]));
    await assert.rejects(remove(as('m0', 'client')), refused([grpc.status.PERMISSION_DENIED]));
    await remove(as('m0', 'operator')); // an unknown peer: removed nothing, but allowed
  });

  test("m0's gateway accepts Attach from its consensus certificate only", async () => {
    const attach = (security: ClientSecurity) => new Promise<grpc.StatusObject>((resolve) => {
      const st = client(GatewayServiceClient, ports.gateway, security).attach();
      st.on('data', () => undefined);
      st.on('status', resolve);
      st.on('error', (e: grpc.ServiceError) => resolve(e));
    });
    // m0's consensus is attached already: its own certificate is turned away as a second
    // consumer (FAILED_PRECONDITION), every other certificate for who it is (PERMISSION_DENIED).
    assert.equal((await attach(as('m0', 'consensus'))).code, grpc.status.FAILED_PRECONDITION);
    for (const role of ['gateway', 'operator', 'client'] as const) {
      const s = await attach(as('m0', role));
      assert.equal(s.code, grpc.status.PERMISSION_DENIED, `${role}: ${s.details}`);
    }
    assert.ok([grpc.status.UNAVAILABLE, grpc.status.PERMISSION_DENIED].includes((await attach(as('m1', 'consensus'))).code), "m1's consensus");
    const refusals = await metric(ports.gatewayMetrics, 'btcfed_rpc_refused_requests_total', 'method="/btcfed.v1.GatewayService/Attach"');
    assert.ok(refusals >= 3, `refusals counted (${refusals})`);
  });

  test("consensus's public API answers the client and operator certificates; AdminService the operator only", async () => {
    const statusAs = (security: ClientSecurity) => {
      const c = client(ConsensusServiceClient, ports.consensus, security);
      return call(c.getStatus.bind(c), {}, { deadlineMs: 5000 });
    };
    assert.equal((await statusAs(as('m0', 'client'))).member, 'm0');
    await statusAs(as('m0', 'operator'));
    await assert.rejects(statusAs(as('m0', 'gateway')), refused([grpc.status.PERMISSION_DENIED]));
    const dumpAs = (security: ClientSecurity) => {
      const c = client(AdminServiceClient, ports.admin, security);
      return call(c.dumpState.bind(c), {}, { deadlineMs: 5000 });
    };
    await dumpAs(as('m0', 'operator'));
    await assert.rejects(dumpAs(as('m0', 'client')), refused([grpc.status.PERMISSION_DENIED]));
  });

  test('devnet: --init on the first start only; a lost signer state stops the signer, and devnet says so', async () => {
    const signerDir = path.join(dir, 'm0', 'signer');
    await assert.rejects(fs.access(path.join(signerDir, FRESH_MARKER)), 'the first start used up the marker');
    const signer = net!.procs.find((p) => p.member === 'm0' && p.service === 'signer')!;
    signer.child.kill('SIGTERM');
    await new Promise((r) => signer.child.once('exit', r));
    // The safety state is lost, and the journal with it (a disk replaced, the key restored from backup).
    await fs.rm(path.join(signerDir, 'safety-state.json'));
    await fs.rm(path.join(signerDir, 'journal.jsonl'));
    await assert.rejects(net!.restart(0, 'signer'), /m0\/signer exited .*no safety state/);
    await assert.rejects(fs.access(path.join(signerDir, 'safety-state.json')), 'no state was made up');
  });
});
