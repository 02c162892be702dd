// The consensus metrics that alert rules and dashboards read (deploy/prometheus): participation
// per validator from the commit QCs, the set's quorum and fault bound, halted, block sizes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blockHash } from '#libs/crypto/index.ts';
import { createPromMetrics } from '#libs/metrics/index.ts';
import { Phase, genesisBlock, type Block } from '#libs/hotstuff/index.ts';
import { consensusMetrics } from './metrics.ts';
import { testValidatorSet } from '#libs/validators/test-kit.ts';

const sample = (text: string, name: string, labels = ''): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) || (labels && l.startsWith(`${name}{`) && l.includes(labels)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
};

test('participation, quorum, fault bound, halted and block sizes are exported', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  const m = consensusMetrics(metrics, () => 0, { validators: testValidatorSet(7), mempoolCapacity: 5000 });
  let text = await metrics.text();
  assert.equal(sample(text, 'btcfed_consensus_quorum_signatures'), 5);
  assert.equal(sample(text, 'btcfed_consensus_fault_bound_validators'), 2);
  assert.equal(sample(text, 'btcfed_consensus_validators'), 7);
  assert.equal(sample(text, 'btcfed_consensus_mempool_capacity_transactions'), 5000);
  assert.equal(sample(text, 'btcfed_consensus_halted_state'), 0);
  assert.equal(sample(text, 'btcfed_consensus_qc_signatures_total', 'validator="6"'), 0, 'a validator that never signed shows as 0, not as nothing');

  const g = genesisBlock('metrics-test', blockHash);
  const b: Block = { ...g, header: { ...g.header, height: 1 }, txs: [new Uint8Array(100), new Uint8Array(50)] };
  const qc = { phase: Phase.COMMIT, view: 1, blockHash: b.hash, signers: [0, 2, 3, 4, 6], signatures: [] };
  m.observer.committed([b], qc);
  m.observer.committed([b], { ...qc, signers: [0, 1, 2, 3, 4] });
  m.observer.halted(1, 'test');
  m.observer.timerSet(9, 4000, 2);
  m.observer.muted(3, 20_000);
  m.observer.invalidSignature(3, 'qc(2,17) vote', 17, 0);
  m.observer.invalidSignature(3, 'qc(2,18) vote: 2 signers for a quorum of 5', 18, 0);
  text = await metrics.text();
  assert.equal(sample(text, 'btcfed_consensus_qcs_total'), 2);
  assert.equal(sample(text, 'btcfed_consensus_qc_signatures_total', 'validator="0"'), 2);
  assert.equal(sample(text, 'btcfed_consensus_qc_signatures_total', 'validator="1"'), 1);
  assert.equal(sample(text, 'btcfed_consensus_qc_signatures_total', 'validator="5"'), 0);
  assert.equal(sample(text, 'btcfed_consensus_halted_state'), 1);
  assert.equal(sample(text, 'btcfed_consensus_view_timeout_seconds'), 4, 'the armed view timer');
  assert.equal(sample(text, 'btcfed_consensus_timer_level_state'), 2);
  assert.equal(sample(text, 'btcfed_consensus_peer_mutes_total', 'peer="3"'), 1);
  assert.equal(sample(text, 'btcfed_consensus_peer_muted_until_seconds', 'peer="3"'), 20, 'now (0 here) plus the mute, in seconds');
  assert.equal(sample(text, 'btcfed_consensus_invalid_signatures_total', 'what="qc"'), 2, 'QC failures of any view under one label value');
  assert.equal(sample(text, 'btcfed_consensus_invalid_signatures_total', 'what="vote"'), 0, 'present before the first failure');
  assert.ok(!/what="qc\(/.test(text), 'no label value carries a view');
  assert.equal(sample(text, 'btcfed_consensus_block_transactions_sum'), 4);
  assert.equal(sample(text, 'btcfed_consensus_block_size_bytes_sum'), 300);
});

test('the transaction index: ids waiting for a merge, merges done, the bytes its tables take, its filter, its runs and their compactions', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  const m = consensusMetrics(metrics, () => 0, { validators: testValidatorSet(4), mempoolCapacity: 5000 });
  m.txIndex({ recent: 1200, merges: 2, bytes: 3 * 16 * 41, filtered: false, spared: 0, runs: { runs: 2, compactions: 0, failed: 0 } });
  assert.equal(sample(await metrics.text(), 'btcfed_consensus_tx_index_filter_built_state'), 0);
  m.txIndex({ recent: 5, merges: 3, bytes: 262_144 * 41, filtered: true, spared: 700, runs: { runs: 4, compactions: 1, failed: 1 } });
  m.txIndex({ recent: 5, merges: 3, bytes: 262_144 * 41, filtered: true, spared: 1900, runs: { runs: 1, compactions: 2, failed: 1 } });
  const text = await metrics.text();
  assert.equal(sample(text, 'btcfed_consensus_tx_index_filter_built_state'), 1);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_filter_spared_total'), 1900);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_unmerged_transactions'), 5);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_merges_total'), 3);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_memory_bytes'), 262_144 * 41);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_runs_entries'), 1);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_compactions_total', 'result="done"'), 2);
  assert.equal(sample(text, 'btcfed_consensus_tx_index_compactions_total', 'result="failed"'), 1);
});

test('a reconfiguration held here: how long it has waited, from the first poll that saw it; 0 once none is held', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  let t = 1_000_000;
  const m = consensusMetrics(metrics, () => t, { validators: testValidatorSet(4) });
  const pending = async () => sample(await metrics.text(), 'btcfed_consensus_reconfig_pending_seconds');
  m.reconfig(undefined);
  assert.equal(await pending(), 0);
  m.reconfig('aa');
  t += 90_000;
  m.reconfig('aa');
  assert.equal(await pending(), 90);
  // Another change (the first ended its epoch, or was replaced) starts from 0.
  m.reconfig('bb');
  assert.equal(await pending(), 0);
  t += 5_000;
  m.reconfig('bb');
  assert.equal(await pending(), 5);
  m.reconfig(undefined);
  assert.equal(await pending(), 0);
});

test('participation follows the epoch\'s set: a set that shrinks drops the series of the indices it has no more, one that grows adds them at 0', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  const m = consensusMetrics(metrics, () => 0, { validators: testValidatorSet(7) });
  const g = genesisBlock('metrics-test', blockHash);
  const series = async () => (await metrics.text()).split('\n').filter((l) => l.startsWith('btcfed_consensus_qc_signatures_total{'))
    .map((l) => /validator="(\d+)"/.exec(l)![1]).sort();
  m.observer.committed([g], { phase: Phase.COMMIT, view: 1, blockHash: g.hash, signers: [0, 1, 2, 3, 4, 5, 6], signatures: [] });
  assert.deepEqual(await series(), ['0', '1', '2', '3', '4', '5', '6']);
  // Two members removed: f goes from 2 to 1, and two series stuck at rate 0 would have been "two
  // validators missing from most QCs, more than f" (BtcfedValidatorsMissing) for as long as the rate's window.
  m.observer.epochStarted(1, testValidatorSet(5), g, true);
  assert.deepEqual(await series(), ['0', '1', '2', '3', '4']);
  assert.equal(sample(await metrics.text(), 'btcfed_consensus_fault_bound_validators'), 1);
  m.observer.epochStarted(2, testValidatorSet(6), g, true);
  assert.deepEqual(await series(), ['0', '1', '2', '3', '4', '5']);
  assert.equal(sample(await metrics.text(), 'btcfed_consensus_qc_signatures_total', 'validator="5"'), 0, 'the new index starts at 0');
});

test('read CPU the public API charged: seconds by read method, every method\'s series from the start, no other label value', async () => {
  const metrics = createPromMetrics({ prefix: 'btcfed_', processMetrics: false });
  const m = consensusMetrics(metrics, () => 0, { validators: testValidatorSet(4) });
  const spent = async (method: string) => sample(await metrics.text(), 'btcfed_consensus_api_read_cpu_seconds_total', `method="${method}"`);
  for (const method of ['GetBlock', 'ListBlocks', 'GetTransaction', 'GetStatus', 'GetValidators', 'GetEvidence', 'GetEpochs']) {
    assert.equal(await spent(method), 0, `${method} present before its first read`);
  }
  m.api.readCpu('ListBlocks', 1500);
  m.api.readCpu('ListBlocks', 250);
  m.api.readCpu('GetStatus', 0.5);
  m.api.readCpu('GetBlock', 0);
  m.api.readCpu('SubmitTransaction', 40); // no read: never a label value
  assert.equal(await spent('ListBlocks'), 1.75);
  assert.equal(await spent('GetStatus'), 0.0005);
  assert.equal(await spent('GetBlock'), 0);
  assert.equal(await spent('SubmitTransaction'), undefined);
  assert.ok(!/btcfed_consensus_api_read_cpu_seconds_total\{[^}]*(client|sha256|addr)/.test(await metrics.text()), 'labelled by method only');
});
