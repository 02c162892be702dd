import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ATTACH_CATCHING_UP_METADATA, ATTACH_ROLE_METADATA, attachRoleMetadata, attachRoleOf } from './attach-role.ts';

const md = (pairs: [string, string][]): grpc.Metadata => {
  const m = new grpc.Metadata();
  for (const [k, v] of pairs) m.add(k, v);
  return m;
};

test('an Attach call says its role and whether it is catching up; unsaid is a validator taking part', () => {
  assert.deepEqual(attachRoleOf(new grpc.Metadata()), { role: 'validator', catchingUp: false });
  assert.deepEqual(attachRoleOf(attachRoleMetadata('validator')), { role: 'validator', catchingUp: false });
  assert.deepEqual(attachRoleOf(attachRoleMetadata('validator', true)), { role: 'validator', catchingUp: true });
  assert.deepEqual(attachRoleOf(attachRoleMetadata('observer')), { role: 'observer', catchingUp: false });
  assert.deepEqual(attachRoleOf(md([[ATTACH_CATCHING_UP_METADATA, 'false']])), { role: 'validator', catchingUp: false });
});

test('what an Attach call cannot say is refused, naming the metadata', () => {
  const error = (m: grpc.Metadata): string => {
    const r = attachRoleOf(m);
    assert.ok('error' in r, `refused: ${JSON.stringify(r)}`);
    return r.error;
  };
  assert.match(error(md([[ATTACH_ROLE_METADATA, 'leader']])), /btcfed-attach-role "leader" is not one of validator, observer/);
  assert.match(error(md([[ATTACH_ROLE_METADATA, 'validator'], [ATTACH_ROLE_METADATA, 'observer']])), /btcfed-attach-role given 2 times/);
  assert.match(error(md([[ATTACH_CATCHING_UP_METADATA, 'yes']])), /btcfed-attach-catching-up "yes" is not true or false/);
  assert.match(error(md([[ATTACH_CATCHING_UP_METADATA, 'true'], [ATTACH_CATCHING_UP_METADATA, 'true']])), /btcfed-attach-catching-up given 2 times/);
  // An observer takes no part, so it cannot be catching up (as its participation request is refused).
  assert.match(error(attachRoleMetadata('observer', true)), /an observer takes no part/);
  assert.match(error(md([[ATTACH_CATCHING_UP_METADATA, 'x'.repeat(500)]])), /"x{40}" is not/);
});
