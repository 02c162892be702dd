// The checker's comparison of a stream's copies (pure; the copies themselves are read from a
// real NATS cluster by compareCopies in the campaign). The divergent case has the shape the
// fault campaign found on nats-server 2.9.10: one sequence number, two different messages.
// Then its logs read on from what earlier checks agreed (against members answering from memory:
// the test bed checks real ones).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConsensusServiceClient } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { CheckedLogs, check, diffCopies, type StreamEntry } from './checker.ts';

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

// A member's log as its public API gives it (ListBlocks in pages, GetStatus), counting the blocks
// it returned: what the checks below cost the member.
function fakeMember(hashes: string[]) {
  const member = {
    served: 0,
    hashes,
    getStatus: (_req: unknown, _md: unknown, _o: unknown, cb: (e: null, r: unknown) => void) => { cb(null, { committedHeight: member.hashes.length }); return { cancel() {} }; },
    listBlocks: (req: { fromHeight: number; limit: number }, _md: unknown, _o: unknown, cb: (e: null, r: unknown) => void) => {
      const blocks = member.hashes.slice(req.fromHeight - 1, req.fromHeight - 1 + req.limit).map((h, k) => ({
        blockHash: Buffer.from(h), block: { header: { height: req.fromHeight + k, proposer: 0 }, txs: [Buffer.from(`tx-${h}`)] },
      }));
      member.served += blocks.length;
      cb(null, { blocks });
      return { cancel() {} };
    },
  };
  return member;
}
const chain = (n: number, fork?: { at: number; tag: string }) => Array.from({ length: n }, (_, k) => (fork && k + 1 >= fork.at ? `${fork.tag}${k + 1}` : `b${k + 1}`));
const asClients = (ms: ReturnType<typeof fakeMember>[]) => ms as unknown as ConsensusServiceClient[];

test('a second check reads each member from the height the first one agreed on, and still counts every transaction', async () => {
  const ms = [fakeMember(chain(250)), fakeMember(chain(250)), fakeMember(chain(240))];
  const checked = new CheckedLogs();
  const first = await check(asClients(ms), ['m0', 'm1', 'm2'], undefined, undefined, checked);
  assert.deepEqual(first.disagreements, []);
  assert.equal(checked.height, 240, 'agreed up to the lowest member');
  for (const m of ms) { m.served = 0; m.hashes = chain(300); }
  const second = await check(asClients(ms), ['m0', 'm1', 'm2'], undefined, undefined, checked);
  assert.deepEqual(second.heights, [300, 300, 300]);
  assert.deepEqual(second.disagreements, []);
  // From the pin (240) on: 61 blocks each, not 300.
  assert.deepEqual(ms.map((m) => m.served), [61, 61, 61]);
  assert.equal(checked.height, 300);
});

test('a member whose block at the checked height differs is read whole, and the disagreement is reported where it starts', async () => {
  const ms = [fakeMember(chain(120)), fakeMember(chain(120))];
  const checked = new CheckedLogs();
  await check(asClients(ms), ['m0', 'm1'], undefined, undefined, checked);
  ms[1]!.hashes = chain(150, { at: 90, tag: 'x' });
  ms[0]!.hashes = chain(150);
  ms[1]!.served = 0;
  const r = await check(asClients(ms), ['m0', 'm1'], undefined, undefined, checked);
  assert.equal(ms[1]!.served, 31 + 150, 'm1: from the pin, then all of it');
  assert.equal(r.disagreements[0]?.height, 90);
  assert.equal(r.disagreements.length, 61);
  assert.equal(checked.height, 120, 'nothing past the disagreement is recorded as agreed');
});
