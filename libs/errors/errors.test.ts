import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FedError, isFedError, errorMessage } from '#libs/errors/index.ts';

test('FedError carries code and details and is recognised by code', () => {
  const e = new FedError('CONFIG_INVALID', 'bad', { field: 'node.private_key' });
  assert.equal(e.code, 'CONFIG_INVALID');
  assert.deepEqual(e.details, { field: 'node.private_key' });
  assert.ok(isFedError(e, 'CONFIG_INVALID'));
  assert.ok(!isFedError(e, 'OTHER'));
  assert.ok(!isFedError(new Error('x')));
  assert.equal(errorMessage(e), 'bad');
  assert.equal(errorMessage('plain'), 'plain');
});
