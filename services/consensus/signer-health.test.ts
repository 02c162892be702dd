import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { FedError } from '#libs/errors/index.ts';
import { SignerHealth, unanswered } from './signer-health.ts';

const rpc = (code: grpc.status) => new FedError('SIGNER_RPC_FAILED', `code ${code}`, { grpcCode: code });

test('a signer that does not answer makes the member not ready until it answers again; a refusal is an answer', () => {
  let now = 1_000;
  const seen: boolean[] = [];
  const h = new SignerHealth(() => now, (up) => seen.push(up));
  assert.equal(h.problem, undefined);
  h.failed(new FedError('SIGNER_REFUSED', 'rule=one-per-slot: …', { grpcCode: grpc.status.FAILED_PRECONDITION }));
  assert.equal(h.problem, undefined, 'a refusal is an answer');
  h.failed(rpc(grpc.status.UNAVAILABLE));
  now += 4_000;
  h.failed(rpc(grpc.status.DEADLINE_EXCEEDED));
  assert.match(h.problem ?? '', /^the signer does not answer \(for 4 s\): code 4/);
  h.answered();
  assert.equal(h.problem, undefined);
  assert.deepEqual(seen, [false, true], 'each change reported once');
  assert.equal(unanswered(new Error('plain')), false);
});
