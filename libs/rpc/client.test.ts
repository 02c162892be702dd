// callPatiently: a read refused by a server's rate limits waits the time the refusal names and asks
// again; anything else fails at once, as call() does.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { callPatiently, RATE_LIMIT_CODE, type UnaryMethod } from './client.ts';
import { ERROR_CODE_TRAILER } from './status.ts';

function refusal(code: grpc.status, fedCode: string, details: string): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_TRAILER, fedCode);
  return Object.assign(new Error(details), { code, details, metadata });
}

/** A unary method that fails with `errors` in turn, then answers; records when each call came. */
function method(errors: grpc.ServiceError[]): { fn: UnaryMethod<string, string>; at: number[] } {
  const at: number[] = [];
  const fn = ((req: string, _m: grpc.Metadata, _o: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: string) => void) => {
    at.push(Date.now());
    const err = errors.shift();
    setImmediate(() => (err ? cb(err, '') : cb(null, `answer to ${req}`)));
    return {} as grpc.ClientUnaryCall;
  }) as UnaryMethod<string, string>;
  return { fn, at };
}

test('callPatiently: refusals by the rate limits wait the time they name, then the call is made again', async () => {
  const spent = refusal(grpc.status.RESOURCE_EXHAUSTED, RATE_LIMIT_CODE, 'ListBlocks: reads may take at most 15 ms of CPU a second per client …; spent, try again in 0.2 s');
  const m = method([spent, spent]);
  const told: [number, string][] = [];
  assert.equal(await callPatiently(m.fn, 'page 1', { onWait: (ms, details) => told.push([ms, details]) }), 'answer to page 1');
  assert.equal(m.at.length, 3);
  assert.deepEqual(told, [[200, spent.details], [200, spent.details]], 'each wait is told before it starts, with the server\'s words');
  assert.ok(m.at[1]! - m.at[0]! >= 190 && m.at[2]! - m.at[1]! >= 190, `asked again after ${m.at[1]! - m.at[0]!} and ${m.at[2]! - m.at[1]!} ms, not the 200 named`);
});

test('callPatiently: any other error fails at once, as does a refusal past its patience', async () => {
  const stream = refusal(grpc.status.RESOURCE_EXHAUSTED, 'API_STREAM_LIMIT', 'StreamCommits: at most 16 streams per client');
  const m1 = method([stream]);
  await assert.rejects(callPatiently(m1.fn, 'x'), (e: grpc.ServiceError) => e === stream);
  assert.equal(m1.at.length, 1, 'a stream refusal is not a rate limit to wait out');
  const down = refusal(grpc.status.UNAVAILABLE, '', 'connection refused');
  const m2 = method([down]);
  await assert.rejects(callPatiently(m2.fn, 'x'), (e: grpc.ServiceError) => e === down);
  assert.equal(m2.at.length, 1);
  const long = refusal(grpc.status.RESOURCE_EXHAUSTED, RATE_LIMIT_CODE, 'ListBlocks: …; spent, try again in 5.0 s');
  const m3 = method([long]);
  await assert.rejects(callPatiently(m3.fn, 'x', { patienceMs: 1000 }), (e: grpc.ServiceError) => e === long);
  assert.equal(m3.at.length, 1, 'it waited past its patience');
});
