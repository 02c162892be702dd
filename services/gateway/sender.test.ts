import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reasonOf } from './sender.ts';

test('a failed send is logged with its real reason, not "[object Event]"', () => {
  assert.equal(reasonOf(new Error('stream reset')), 'stream reset');
  const closed = Object.assign(new Event('close'), { error: new Error('Cannot write to a stream that is closed') });
  assert.equal(reasonOf(closed), 'close: Cannot write to a stream that is closed');
  assert.equal(reasonOf(new Event('close')), 'stream close event');
  assert.notEqual(reasonOf(new Event('abort')), '[object Event]');
});
