import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEndedEpochs, encodeEndedEpochs } from './ended-epochs.ts';

const ended = [
  { height: 69, root: new Uint8Array(32).fill(1), tx: new Uint8Array([1, 2, 3]) },
  { height: 120, root: new Uint8Array(32).fill(2), tx: new Uint8Array([4, 5]) },
];

test('ended epochs go through their document unchanged, with the fields the owner binds them to', () => {
  const text = encodeEndedEpochs('f', ended, { chain_id: 'c1', genesis: 'ab' });
  const d = decodeEndedEpochs(text, 'f', ['chain_id', 'genesis']);
  assert.ok(d.ok);
  assert.deepEqual(d.ended, ended);
  assert.deepEqual(d.bound, { chain_id: 'c1', genesis: 'ab' });
  assert.deepEqual(decodeEndedEpochs(encodeEndedEpochs('f', []), 'f'), { ok: true, ended: [], bound: {} });
});

test('a damaged, edited, foreign or unexpected document is refused, naming why', () => {
  const text = encodeEndedEpochs('f', ended, { chain_id: 'c1' });
  const why = (t: string, format = 'f', bound = ['chain_id']) => { const d = decodeEndedEpochs(t, format, bound); return d.ok ? 'accepted' : d.why; };
  assert.match(why(text.slice(0, 40)), /not valid JSON/);
  assert.match(why(text.replace('"height": 120', '"height": 121')), /checksum mismatch/);
  assert.match(why(text, 'g'), /field format/);
  assert.match(why(text, 'f', []), /chain_id|Unrecognized|unrecognized/i, 'a field it was not told of');
  assert.match(why(text, 'f', ['chain_id', 'genesis']), /field genesis/, 'a bound field missing');
  const doc = JSON.parse(text) as { ended: Array<{ root: string }> };
  doc.ended[0]!.root = 'zz';
  assert.match(why(JSON.stringify(doc)), /field ended\.0\.root/);
});
