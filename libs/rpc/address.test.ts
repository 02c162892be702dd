// Address parsing and the loopback rule that gates plaintext gRPC.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedError } from '#libs/errors/index.ts';
import { assertInsecureAllowed, dialTarget, isLoopbackHost, parseAddress } from './index.ts';

test('parseAddress reads host:port, [v6]:port and grpc target prefixes', () => {
  assert.deepEqual(parseAddress('127.0.0.1:50051'), { host: '127.0.0.1', port: 50051 });
  assert.deepEqual(parseAddress('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseAddress('localhost:7000'), { host: 'localhost', port: 7000 });
  assert.deepEqual(parseAddress('dns:localhost:7000'), { host: 'localhost', port: 7000 });
  assert.deepEqual(parseAddress('dns:///signer.internal:443'), { host: 'signer.internal', port: 443 });
  for (const bad of ['127.0.0.1', '::1:80', '[::1]80', ':80', 'host:', 'host:99999', 'host:8o']) {
    assert.throws(() => parseAddress(bad), (err) => isFedError(err, 'RPC_ADDRESS_INVALID'), bad);
  }
});

test('loopback is 127.0.0.0/8, ::1 and localhost only', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'localhost.example.com', '::ffff:10.0.0.1', '']) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});

test('assertInsecureAllowed refuses anything but loopback', () => {
  assert.doesNotThrow(() => assertInsecureAllowed('127.0.0.1:0', 'server'));
  assert.throws(() => assertInsecureAllowed('0.0.0.0:50051', 'server'), (err) => {
    assert.ok(isFedError(err, 'RPC_INSECURE_NON_LOOPBACK'));
    assert.match((err as Error).message, /0\.0\.0\.0:50051/);
    return true;
  });
});

test('a wildcard listen address is dialled on loopback; any other as it is', () => {
  assert.equal(dialTarget('0.0.0.0:7102'), '127.0.0.1:7102');
  assert.equal(dialTarget('[::]:7102'), '[::1]:7102');
  for (const a of ['10.0.0.1:7102', '127.0.0.2:7102', '[::1]:7102', 'signer.internal:7104', 'dns:///signer.internal:443']) assert.equal(dialTarget(a), a);
});
