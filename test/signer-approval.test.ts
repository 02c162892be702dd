// Reconfiguration approvals at the signer (docs/reconfiguration.md, docs/signer.md): only an
// operator's certificate (signer.yaml operator_clients) may ask; the consensus service's may not,
// so a compromised consensus host cannot approve a change of the validator set. The signer signs
// the change's canonical bytes only for its chain and epoch and only if the change is valid
// against its own set; every decision is journaled. Real signer process, real mTLS gRPC, real
// SLH-DSA.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { reconfigSigningBytes } from '#libs/crypto/index.ts';
import { createClient, call } from '#libs/rpc/index.ts';
import { SignerServiceClient } from '#libs/gen/btcfed/v1/signer.pb.ts';
import { reconfigId, type Reconfiguration } from '#libs/validators/index.ts';
import { readJournal } from '../services/signer/journal.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { expectStartRefused, mtlsSignerClient, startSignerProcess } from './support/signer.ts';

let w: SignerWorld;
before(async () => { w = await makeSignerWorld({ tls: true }); });
after(() => w.cleanup());

const client = (port: number, cert: string, key: string) => mtlsSignerClient(w, port, cert, key);
const grpcCode = (code: number) => (e: Error & { details?: Record<string, unknown> }) => e.details?.grpcCode === code;
const rule = (name: string) => (e: Error & { details?: Record<string, unknown> }) => e.details?.rule === name;

function addition(): Reconfiguration {
  const card = w.slh.generateKeyPair(new Uint8Array(w.slh.seedBytes).fill(77));
  return { chainId: w.chainId, epoch: 0, ops: [{ kind: 'add', name: 'joiner', peerId: 'peer-joiner', publicKey: card.publicKey }] };
}

test('an operator certificate in the consensus allow list is refused at start', async () => {
  await w.writeConf({ operator_clients: [w.tls!.clientFingerprint] });
  const r = await expectStartRefused(w.dir, ['--init']);
  assert.equal(r.code, 1);
  assert.match(String(r.fatal.msg), /operator_clients.*also in allowed_clients/);
});

test('an operator approves a valid change; the consensus certificate cannot; bad changes are refused naming the rule', async () => {
  await w.writeConf({ operator_clients: [w.tls!.siblingFingerprint] });
  const { svc, port } = await startSignerProcess(w.dir, ['--init', '--no-nats']);
  const operator = client(port, w.tls!.siblingCert, w.tls!.siblingKey);
  const consensus = client(port, w.tls!.clientCert, w.tls!.clientKey);
  try {
    const change = addition();
    await assert.rejects(consensus.approve(change), grpcCode(grpc.status.PERMISSION_DENIED), 'the consensus service cannot approve');
    const a = await operator.approve(change);
    assert.equal(a.id, reconfigId(change));
    assert.equal(a.validatorIndex, w.self);
    assert.ok(w.slh.verifySync(w.keys[w.self]!.publicKey, reconfigSigningBytes(change), a.signature), 'the approval verifies over the change\'s bytes');
    assert.equal(w.slh.verifySync(w.keys[w.self]!.publicKey, reconfigSigningBytes({ ...change, epoch: 1 }), a.signature), false);

    await assert.rejects(operator.approve({ ...change, epoch: 1 }), rule('epoch'));
    await assert.rejects(operator.approve({ ...change, chainId: 'another-chain' }), rule('chain-id'));
    const below = { chainId: w.chainId, epoch: 0, ops: [{ kind: 'remove' as const, name: 'm0' }] };
    await assert.rejects(operator.approve(below), (e: Error & { details?: Record<string, unknown> }) => rule('reconfig')(e) && /leaves 3 validators/.test(e.message));
    // Not a change at all: INVALID_ARGUMENT naming the field, nothing signed.
    const raw = createClient(SignerServiceClient, `127.0.0.1:${port}`, { security: { mode: 'mtls', caFile: w.tls!.caFile, certFile: w.tls!.siblingCert, keyFile: w.tls!.siblingKey, serverName: 'localhost' } });
    try {
      await assert.rejects(call(raw.approveReconfiguration.bind(raw), { change: new Uint8Array([0, 0, 0, 1, 7]) }, { deadlineMs: 5000 }),
        (e: grpc.ServiceError) => e.code === grpc.status.INVALID_ARGUMENT && /change\.tag/.test(e.details));
    } finally {
      raw.close();
    }
  } finally {
    await operator.close();
    await consensus.close();
    await svc.stop();
  }
  const approvals: Array<Record<string, unknown>> = [];
  for await (const { entry } of readJournal(`${w.dir}/journal.jsonl`)) if (entry.type === 'approval') approvals.push(entry);
  assert.deepEqual(approvals.map((e) => [e.decision, e.rule ?? null]), [['signed', null], ['refused', 'epoch'], ['refused', 'chain-id'], ['refused', 'reconfig']]);
});

test('with no operator_clients, nobody may approve', async () => {
  await w.writeConf();
  const { svc, port } = await startSignerProcess(w.dir, ['--no-nats']);
  const sibling = client(port, w.tls!.siblingCert, w.tls!.siblingKey);
  try {
    await assert.rejects(sibling.approve(addition()), (e: Error & { details?: Record<string, unknown> }) =>
      grpcCode(grpc.status.PERMISSION_DENIED)(e) && /operator_clients is empty/.test(e.message));
  } finally {
    await sibling.close();
    await svc.stop();
  }
});
