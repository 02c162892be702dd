// Issue 9, item 4 (the signer's share of least privilege): nothing but the member's own consensus
// service can reach its signer. Under mutual TLS the signer refuses to start with an empty
// allowed_clients (unless signer.yaml says allow_any_client: true, which it then logs as a
// security event at every start); a certificate the same CA signed for another service is
// refused with PERMISSION_DENIED and signs nothing. Real signer processes, real mTLS gRPC.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Phase } from '#libs/hotstuff/index.ts';
import { readJournal } from '../services/signer/journal.ts';
import { makeSignerWorld, type SignerWorld } from '../services/signer/testkit.ts';
import { expectStartRefused, mtlsSignerClient, startSignerProcess } from './support/signer.ts';

let w: SignerWorld;
before(async () => { w = await makeSignerWorld({ tls: true }); });
after(() => w.cleanup());

const client = (port: number, cert: string, key: string) => mtlsSignerClient(w, port, cert, key);

test('under mTLS an empty allowed_clients is refused at start, naming the field and the fix', async () => {
  await w.writeConf({ allowed_clients: [] });
  const r = await expectStartRefused(w.dir, ['--init']);
  assert.equal(r.code, 1);
  assert.equal(r.fatal.code, 'SIGNER_CLIENTS_REQUIRED');
  assert.match(String(r.fatal.msg), /allowed_clients is empty.*fingerprint.*allow_any_client: true/);
});

test('allow_any_client: true starts, and says so as a security event', async () => {
  await w.writeConf({ allowed_clients: [], allow_any_client: true });
  const { svc } = await startSignerProcess(w.dir, ['--init', '--no-nats']);
  try {
    const warn = svc.lines.find((l) => l.event === 'signer.any_client');
    assert.ok(warn, 'the opt-out is logged');
    assert.equal(warn.security, true);
    assert.equal(warn.level, 40);
  } finally {
    await svc.stop();
  }
});

test('with allowed_clients set: the consensus certificate signs; another certificate of the same CA gets PERMISSION_DENIED and nothing is signed', async () => {
  await w.writeConf(); // the testkit's default: allowed_clients = [the consensus client's fingerprint]
  const { svc, port } = await startSignerProcess(w.dir, ['--no-nats']);
  const sibling = client(port, w.tls!.siblingCert, w.tls!.siblingKey);
  const consensus = client(port, w.tls!.clientCert, w.tls!.clientKey);
  try {
    const b1 = w.block(1, w.genesis);
    const vote = { kind: 'vote' as const, epoch: 0, phase: Phase.PREPARE, view: 1, blockHash: b1.hash, header: b1.header, justify: w.gqc };
    const denied = (e: Error & { details?: Record<string, unknown> }) => e.details?.grpcCode === grpc.status.PERMISSION_DENIED;
    await assert.rejects(sibling.identity(), denied);
    await assert.rejects(sibling.sign(vote), denied);
    const r = await consensus.sign(vote);
    assert.equal(r.replayed, false, 'the sibling\'s attempt signed nothing: the consensus request is the first signature');
  } finally {
    await sibling.close();
    await consensus.close();
    await svc.stop();
  }
  let signed = 0;
  for await (const { entry } of readJournal(`${w.dir}/journal.jsonl`)) if (entry.decision === 'signed') signed++;
  assert.equal(signed, 1);
});
