// The checker's comparison of a stream's copies (pure; the copies themselves are read from a
// real NATS cluster by compareCopies in the campaign). The divergent case has the shape the
// fault campaign found on nats-server 2.9.10: one sequence number, two different messages.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffCopies, type StreamEntry } from './checker.ts';

const entry = (seq: number, member: string, height: number): StreamEntry => ({ seq, member, height, hash: `${member}-${height}` });
const stream: StreamEntry[] = [entry(1, 'm0', 1), entry(2, 'm1', 1), entry(3, 'm0', 2), entry(4, 'm1', 2)];

test('copies that agree, or one read later and longer, are no problem', () => {
  assert.deepEqual(diffCopies(new Map([['n1', stream], ['n2', stream.slice(0, 3)], ['n3', [...stream, entry(5, 'm0', 3)]]])), []);
  assert.deepEqual(diffCopies(new Map()), []);
});

test('a sequence number holding another message in one copy is reported, with both nodes and the first difference', () => {
  const swapped = [stream[0]!, entry(2, 'm0', 2), entry(3, 'm1', 1), stream[3]!];
  const problems = diffCopies(new Map([['n1', stream], ['n2', stream], ['n3', swapped]]));
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /message 2 read from n1 is m1:1 at seq 2, from n3 m0:2 at seq 2/);
  // The same messages under other numbers (a copy that lost one and numbered the rest again).
  const renumbered = [stream[0]!, { ...stream[2]!, seq: 2 }, { ...stream[3]!, seq: 3 }];
  assert.match(diffCopies(new Map([['n1', stream], ['n2', renumbered]]))[0]!, /message 2 read from n1 is m1:1 at seq 2, from n2 m0:2 at seq 2/);
});
