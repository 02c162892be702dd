// Reading a token's info: a transient answer (SoftHSM2's CKR_GENERAL_ERROR while another process
// rewrites the token) is read again after a pause; any other error at once. The real tokens are
// in test/signer-pkcs11.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenInfo } from './pkcs11.ts';

const info = { label: 'tok' } as unknown as ReturnType<typeof tokenInfo>;
const failing = (codes: string[]) => {
  let calls = 0;
  return {
    get calls() { return calls; },
    C_GetTokenInfo() {
      const code = codes[calls++];
      if (code) throw new Error(`${code}`);
      return info;
    },
  };
};

test('a transient answer is read again; five in a row is given up', () => {
  const twice = failing(['CKR_GENERAL_ERROR', 'CKR_DEVICE_ERROR']);
  assert.equal(tokenInfo(twice, Buffer.alloc(8)), info);
  assert.equal(twice.calls, 3);
  const always = failing(Array(10).fill('CKR_GENERAL_ERROR') as string[]);
  assert.throws(() => tokenInfo(always, Buffer.alloc(8)), /CKR_GENERAL_ERROR/);
  assert.equal(always.calls, 6, 'the first read and five more');
});

test('an error that is not transient is not read again', () => {
  const gone = failing(['CKR_TOKEN_NOT_PRESENT']);
  assert.throws(() => tokenInfo(gone, Buffer.alloc(8)), /CKR_TOKEN_NOT_PRESENT/);
  assert.equal(gone.calls, 1);
});
