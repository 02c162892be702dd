// Hand-off budgets (handoff.ts) across a set change: each follows its member to its new number,
// in the budget itself and in the batch intake's budgets both ways (batch-intake.ts), renumbered
// with the held batches (BatchStore.renumber), with a hand-turned clock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { peekFrame } from '#libs/wire/index.ts';
import { BatchIntake } from './batch-intake.ts';
import { BatchStore } from './batches.ts';
import { HandoffBudget } from './handoff.ts';
import { manualClock } from './manual-clock.ts';
import { Mempool } from './mempool.ts';
import { OUTSIDE_BASE } from './ports.ts';
import { batchDelayMs } from './tx-batcher.ts';

/** Epoch 1 removes validator 1 of four (m2 and m3 move down one) and adds m4, number 3. */
const removeM1 = (i: number) => (i === 1 ? undefined : i > 1 ? i - 1 : i);

test('a budget follows its member across a set change: one renumbered into a removed member\'s number neither inherits its spent budget nor gets a fresh one', () => {
  const budget = new HandoffBudget({ rate: 10, now: () => 0 });
  assert.equal(budget.take(1, 10), 10, 'm1 spends its budget');
  assert.equal(budget.take(3, 10), 10, 'm3 spends its budget');
  assert.equal(budget.take(OUTSIDE_BASE, 4), 4);
  budget.renumber(removeM1);
  assert.equal(budget.take(1, 10), 10, 'm2, number 1 now, has its own budget, not m1\'s spent one');
  assert.equal(budget.take(2, 10), 0, 'm3, number 2 now, has spent its budget still');
  assert.equal(budget.take(3, 10), 10, 'm4, the new number 3, gets a fresh budget, not m3\'s spent one');
  assert.equal(budget.take(OUTSIDE_BASE, 10), 6, 'outside peers keep theirs');
});

test('the batch intake\'s budgets, taken from and handed to each validator, follow their members when the held batches are renumbered', () => {
  const clock = manualClock();
  const store = new BatchStore({ maxBytesPerHolder: 1 << 20, maxBatchesPerHolder: 64 });
  const driver = { self: 0, validatorCount: 4, isCommitted: () => false, batches: store, engine: undefined as never, indexNow: () => undefined };
  const sentTo: number[] = [];
  const useless: Array<[number, string]> = [];
  const intake = new BatchIntake({ chainId: 'handoff', maxBlockBytes: 1 << 20, maxTxBytes: 1024, driver, handoffTxsPerSecond: 10,
    pool: new Mempool({ maxTxs: 1000, maxBytes: 1 << 20, maxTxBytes: 1024 }), clock, log: pino({ level: 'silent' }),
    transport: { send: (to, f) => { if (peekFrame(f)?.kind === 'tx-batch') sentTo.push(to); }, broadcast: () => { sentTo.push(1, 2, 3); } },
    useless: (from, reason) => { useless.push([from, reason]); }, counted: () => {} });
  let n = 0;
  const txs = (k: number) => Array.from({ length: k }, () => new TextEncoder().encode(`tx-${n++}`));
  // Taken: m1 and m3 hand over a second's worth each (10). Handed: this member's 8 (its share) to each.
  intake.onBatch(1, txs(10));
  intake.onBatch(3, txs(10));
  for (const tx of txs(8)) intake.gossip(tx);
  clock.advance(batchDelayMs(4));
  assert.deepEqual(sentTo.splice(0), [1, 2, 3]);
  assert.equal(intake.refused, 0);
  store.renumber(removeM1, 1, 0);
  // m2 (number 1) has its own budget; m3 (number 2) has spent its; m4 (number 3) gets a fresh one.
  intake.onBatch(1, txs(5));
  intake.onBatch(3, txs(5));
  assert.equal(intake.refused, 0, 'm2 and m4 are not refused');
  intake.onBatch(2, txs(5));
  assert.equal(intake.refused, 5, 'm3 is refused');
  assert.deepEqual(useless, [[2, 'handoff_rate']]);
  for (const tx of txs(1)) intake.gossip(tx);
  clock.advance(batchDelayMs(4));
  assert.deepEqual(sentTo, [3], 'only m4 has room for this member\'s batch: m2 and m3 spent theirs before the change');
  assert.equal(intake.withheld, 2);
});
