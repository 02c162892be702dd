// Who a caller of the public API is: its certificate's fingerprint, or without TLS the host part
// of grpc-js's peer string (every port of one host is one client).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientIdentity, hostOf } from './api-guard.ts';

test('the host of a grpc-js peer string, whatever its form', () => {
  assert.equal(hostOf('127.0.0.1:51234'), '127.0.0.1');
  assert.equal(hostOf('ipv4:10.0.0.7:443'), '10.0.0.7');
  assert.equal(hostOf('::1:51234'), '::1');
  assert.equal(hostOf('[::1]:51234'), '::1');
  assert.equal(hostOf('ipv6:[fe80::1]:7'), 'fe80::1');
  assert.equal(hostOf('::ffff:127.0.0.1:8080'), '::ffff:127.0.0.1');
  assert.equal(hostOf('unknown'), 'unknown');
});

test('without a client certificate, two connections of one host are one client', () => {
  const call = (peer: string) => ({ getPeer: () => peer, getAuthContext: () => null });
  const a = clientIdentity(call('127.0.0.1:40001'));
  const b = clientIdentity(call('127.0.0.1:40002'));
  assert.equal(a.key, b.key);
  assert.equal(a.key, 'addr:127.0.0.1');
  assert.notEqual(clientIdentity(call('127.0.0.2:40001')).key, a.key);
});
