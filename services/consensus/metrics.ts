// The consensus service's metrics, fed by the driver's observer and by wrapping the signer.
// Units are in the names (Prometheus conventions); libs/metrics checks them.

import type { Metrics } from '#libs/metrics/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';
import { type Block, type ConsensusMessage, type QuorumCert, type SignRequest } from '#libs/hotstuff/index.ts';
import type { DriverObserver, SignerPort } from './ports.ts';
import type { BatchDiskObserver } from './batch-disk.ts';
import type { JournalObserver, ReplayOutcome } from './mempool-journal.ts';
import { isOutside } from './ports.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What a signature that failed was on (the `what` label of consensus_invalid_signatures_total). */
const SIGNED_KINDS = ['proposal', 'vote', 'new-view', 'qc'] as const;
const TX_COUNT_BUCKETS = [0, 1, 10, 100, 500, 1000, 2500, 5000, 10_000, 20_000];
const BLOCK_BYTES_BUCKETS = [256, 4096, 65_536, 262_144, 1 << 20, 2 << 20, 4 << 20, 8 << 20];
/** A group commit of the mempool journal is one LMDB write and one fdatasync: milliseconds. */
const FSYNC_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const BATCH_EVENTS = ['asked', 'received', 'served', 'waited', 'unavailable'] as const;
const REPLAY_OUTCOMES: readonly ReplayOutcome[] = ['restored', 'committed', 'duplicate', 'refused', 'corrupt'];
/** The public API's read methods: those charged for read CPU (the `method` label of consensus_api_read_cpu_seconds_total). */
const READ_METHODS: readonly string[] = ['GetBlock', 'ListBlocks', 'GetTransaction', 'GetStatus', 'GetValidators', 'GetEvidence', 'GetEpochs'];
/** The public API's methods by the client limits that can refuse them (services.consensus.limits), for series that exist from the start. */
const API_LIMITS: ReadonlyArray<readonly [readonly string[], readonly string[]]> = [
  [READ_METHODS, ['read_per_client', 'read_total', 'read_cpu_per_client', 'read_cpu_total', 'reads_in_flight_per_client', 'reads_in_flight_total']],
  [['SubmitTransaction', 'SubmitTransactions'], ['submit_per_client', 'submit_total']],
  [['StreamCommits'], ['streams_per_client', 'streams_total', 'stream_stall']],
];

export interface ConsensusMetricsOptions {
  /** The validator set: its size exported with its quorum and fault bound, for alert rules. */
  validators?: Pick<ValidatorSet, 'n' | 'f' | 'quorum'>;
  /** The mempool's capacity in transactions (conf consensus.mempool_max_txs). */
  mempoolCapacity?: number;
}

export function consensusMetrics(m: Metrics, now: () => number = Date.now, opts: ConsensusMetricsOptions = {}) {
  const commitLatency = m.histogram('consensus_commit_latency_seconds', 'From a block\'s proposal timestamp to its commit here', [], LATENCY_BUCKETS);
  const blockInterval = m.histogram('consensus_block_interval_seconds', 'Between the timestamps of consecutive committed blocks', [], LATENCY_BUCKETS);
  const viewDuration = m.histogram('consensus_view_duration_seconds', 'How long each view lasted here', ['cause'], LATENCY_BUCKETS);
  const viewChanges = m.counter('consensus_view_changes_total', 'Views entered, by what moved the member on', ['cause']);
  const blocks = m.counter('consensus_blocks_committed_total', 'Blocks committed');
  const txs = m.counter('consensus_transactions_committed_total', 'Transactions committed');
  const height = m.gauge('consensus_committed_height', 'Height of the last committed block');
  const view = m.gauge('consensus_current_view', 'The view this member is in');
  const viewTimeout = m.gauge('consensus_view_timeout_seconds', 'The timer of the current view: base × multiplier^(timer level + views since the last commit), capped');
  const signatures = m.counter('consensus_signatures_total', 'Signatures requested from the signer, by kind and result', ['kind', 'result']);
  const signerLatency = m.histogram('consensus_signer_latency_seconds', 'Round trip of one signer request', ['kind'], LATENCY_BUCKETS);
  const rejected = m.counter('consensus_rejected_messages_total', 'Messages the engine or the decoder refused, by reason', ['reason']);
  const invalidSigs = m.counter('consensus_invalid_signatures_total', 'Messages dropped because a signature did not verify', ['what']);
  const equivocations = m.counter('consensus_equivocations_total', 'Conflicting signed messages seen (every one, kept or not)');
  const evidenceKept = m.counter('consensus_evidence_total', 'Equivocation evidence by outcome: kept, or not kept because its slot is known or a cap is reached', ['outcome']);
  const offences = m.counter('consensus_peer_offences_total', 'Frames and messages refused, by the validator that sent them and why', ['peer', 'reason']);
  const timerLevel = m.gauge('consensus_timer_level_state', 'What recent views needed, added to the view timer\'s back-off exponent (0 to 3; rises only for slow views of f + 1 leaders)');
  const mutes = m.counter('consensus_peer_mutes_total', 'Times a validator was muted (its frames dropped unread) for repeated offences', ['peer']);
  const mutedUntil = m.gauge('consensus_peer_muted_until_seconds', 'Unix time until which a validator\'s frames are dropped unread (in the past once the mute ends)', ['peer']);
  const leadersSkipped = m.gauge('consensus_skipped_leaders_validators', 'Validators the leader schedule leaves out of the rotation now: no committed block of their own in their recent views (libs/hotstuff schedule.ts); their views go to the next in the ring');
  const viewsSkipped = m.counter('consensus_views_skipped_total', 'Views given up on entering them because their leader was suspected (muted, absent — its consensus gone —, its recent views failed, or they were far slower than the others), by leader and reason', ['leader', 'reason']);
  const blockTimeAnomalies = m.counter('consensus_block_time_anomalies_total', 'Committed blocks whose time could not be measured: stamped after their commit here (ahead), or not after the block before (backwards); left out of the latency and interval histograms, never clamped', ['kind']);
  const prunedAnswers = m.counter('consensus_sync_pruned_answers_total', 'Block requests of this member a peer answered "pruned": it lacks blocks that peer no longer keeps (consensus.keep_blocks)');
  const halts = m.counter('consensus_halts_total', 'Times consensus halted (conflicting commits or untrusted state)');
  const mempool = m.gauge('consensus_mempool_transactions', 'Transactions waiting in the mempool');
  const peers = m.gauge('consensus_peers', 'Validators the gateway reports connected');
  const qcFormation = m.histogram('consensus_qc_formation_seconds', 'As leader: from our proposal to each QC of the view', ['phase'], LATENCY_BUCKETS);
  const sentMessages = m.counter('consensus_messages_sent_total', 'Consensus messages this member sent, by type', ['type']);
  const halted = m.gauge('consensus_halted_state', '1 while consensus is halted (conflicting commits or untrusted state), else 0');
  const qcs = m.counter('consensus_qcs_total', 'Commit QCs this member committed with (the denominator of participation)');
  const qcSignatures = m.counter('consensus_qc_signatures_total', 'Signatures in the commit QCs this member committed with, by validator index: who takes part', ['validator']);
  const blockTxs = m.histogram('consensus_block_transactions', 'Transactions per committed block', [], TX_COUNT_BUCKETS);
  const blockBytes = m.histogram('consensus_block_size_bytes', 'Transaction bytes per committed block', [], BLOCK_BYTES_BUCKETS);
  const mempoolCapacity = m.gauge('consensus_mempool_capacity_transactions', 'Transactions the mempool holds at most');
  const validators = m.gauge('consensus_validators', 'Validators in the set');
  const quorum = m.gauge('consensus_quorum_signatures', 'Signatures a QC needs (2f + 1)');
  const faults = m.gauge('consensus_fault_bound_validators', 'Faulty validators the set tolerates (f)');
  const epochGauge = m.gauge('consensus_epoch', 'The epoch this member runs (each committed reconfiguration ends one)');
  const configVersion = m.gauge('consensus_config_version', 'Version of the member\'s configuration (the store\'s) this consensus service has applied: btcfed_store_config_version once it has taken a reload');
  const seatGauge = m.gauge('consensus_seat_state', '1 while this member is a validator of its epoch, 0 once a change removed it');
  const journalTxs = m.gauge('consensus_mempool_journal_transactions', 'Accepted transactions in the durable mempool journal (not committed yet)');
  const journalBytes = m.gauge('consensus_mempool_journal_bytes', 'Bytes of the entries in the mempool journal');
  const journalBatch = m.histogram('consensus_mempool_journal_batch_transactions', 'Transactions made durable per group commit of the mempool journal', [], TX_COUNT_BUCKETS);
  const journalFsync = m.histogram('consensus_mempool_journal_fsync_seconds', 'One group commit of the mempool journal: LMDB write and fdatasync', [], FSYNC_BUCKETS);
  const journalFailures = m.counter('consensus_mempool_journal_failures_total', 'Group commits of the mempool journal that failed (their transactions were not acknowledged)');
  const journalReplayed = m.counter('consensus_mempool_journal_replayed_total', 'Journal entries read at start, by outcome: restored to the mempool, or dropped as committed, duplicate, refused by the mempool, corrupt', ['outcome']);
  const apiRefused = m.counter('consensus_api_refused_total', 'Public API calls refused, and streams cancelled, by a client limit (services.consensus.limits), by method and limit', ['method', 'limit']);
  const apiReadCpu = m.counter('consensus_api_read_cpu_seconds_total', 'Event-loop CPU time public API read calls took, measured and charged to the read CPU limits (services.consensus.limits.read_cpu_per_client and read_cpu_total), by method', ['method']);
  const apiStreams = m.gauge('consensus_api_open_streams', 'StreamCommits streams open now, all clients');
  const reoffered = m.counter('consensus_transactions_reoffered_total', 'Clients\' transactions offered to the next leaders again after waiting uncommitted here (batch-intake.ts REOFFER_AGE_MS; a removed member: retired.ts)');
  const proposedTxs = m.counter('consensus_proposed_transactions_total', 'Transactions in the blocks this member proposed as leader, by how they travel: in a batch the proposal names, or inline in the proposal', ['travel']);
  for (const travel of ['batch', 'inline']) proposedTxs.inc({ travel }, 0);
  const batchBytes = m.gauge('consensus_batch_store_bytes', 'Bytes of the transaction batches held here by digest, this member\'s and other validators\' (batches.ts)');
  const batchCount = m.gauge('consensus_batch_store_entries', 'Transaction batches held here by digest');
  const batchDiskCount = m.gauge('consensus_batch_disk_entries', 'Transaction batches held here that are on disk too, one LMDB value each (batch-disk.ts; read back at start)');
  const batchDiskBytes = m.gauge('consensus_batch_disk_bytes', 'Bytes of the transactions of the batches on disk');
  const batchDiskWrites = m.counter('consensus_batch_disk_writes_total', 'Write transactions of the batches on disk, by result (failed: the batches stay held in memory only)', ['result']);
  for (const result of ['done', 'failed']) batchDiskWrites.inc({ result }, 0);
  const batchDiskSkipped = m.counter('consensus_batch_disk_skipped_total', 'Batches held in memory only: their holder was over its bytes a second on disk (max_block_bytes a second; a flooding validator), by holder', ['holder']);
  const batchDiskLoaded = m.counter('consensus_batch_disk_loaded_total', 'Batches read back from disk at start, by outcome: held again, forgotten as committed (all their transactions), or deleted as expired or corrupt', ['outcome']);
  for (const outcome of ['held', 'committed', 'expired', 'corrupt']) batchDiskLoaded.inc({ outcome }, 0);
  const txIndexRecent = m.gauge('consensus_tx_index_unmerged_transactions', 'Committed transaction ids held in memory, waiting for the next merge into the block store\'s index (tx-index.ts; rebuilt from the blocks after a crash)');
  const txIndexBytes = m.gauge('consensus_tx_index_memory_bytes', 'Bytes the transaction index\'s in-memory tables take: the unmerged ids, the remembered misses, the filter of the ids on disk, and the runs\' fences and filters (tx-index.ts, tx-runs.ts; the tables keep the size of their fullest moment)');
  const txIndexFiltered = m.gauge('consensus_tx_index_filter_built_state', '1 once the filter of the index\'s ids on disk is built (id-filter.ts; built in the background after the store opens, and again after a join\'s history); until then every lookup searches the runs and the tree');
  const txIndexSpared = m.counter('consensus_tx_index_filter_spared_total', 'Lookups of transaction ids the filter answered \'not committed\' without searching the index on disk, since the service started');
  const txIndexMerges = m.counter('consensus_tx_index_merges_total', 'Merges of committed transaction ids into the block store\'s index since the service started');
  const txIndexRuns = m.gauge('consensus_tx_index_runs_entries', 'Sorted runs of committed transaction ids on disk (tx-runs.ts): each merge writes one, and runs of a level are compacted into one of the next once four wait');
  const txIndexCompactions = m.counter('consensus_tx_index_compactions_total', 'Compactions of the index\'s sorted runs since the service started, by result (failed: the inputs stay listed and answer; tried again after the next merge)', ['result']);
  for (const result of ['done', 'failed']) txIndexCompactions.inc({ result }, 0);
  let mergesSeen = 0;
  let sparedSeen = 0;
  let compactionsSeen = 0;
  let failedSeen = 0;
  /** The block store's transaction index, polled. */
  const txIndex = (stats: { recent: number; merges: number; bytes: number; filtered: boolean; spared: number; runs: { runs: number; compactions: number; failed: number } }): void => {
    txIndexRuns.set(stats.runs.runs);
    if (stats.runs.compactions > compactionsSeen) txIndexCompactions.inc({ result: 'done' }, stats.runs.compactions - compactionsSeen);
    compactionsSeen = stats.runs.compactions;
    if (stats.runs.failed > failedSeen) txIndexCompactions.inc({ result: 'failed' }, stats.runs.failed - failedSeen);
    failedSeen = stats.runs.failed;
    txIndexRecent.set(stats.recent);
    txIndexBytes.set(stats.bytes);
    txIndexFiltered.set(stats.filtered ? 1 : 0);
    if (stats.merges > mergesSeen) txIndexMerges.inc({}, stats.merges - mergesSeen);
    mergesSeen = stats.merges;
    if (stats.spared > sparedSeen) txIndexSpared.inc({}, stats.spared - sparedSeen);
    sparedSeen = stats.spared;
  };
  const reconfigPending = m.gauge('consensus_reconfig_pending_seconds', 'How long the reconfiguration this member holds for its epoch (submitted here or passed on by another validator) has waited to commit; 0 when it holds none');
  let pendingSince: { id: string; at: number } | undefined;
  /** The change this member holds now (polled): its id, or undefined. */
  const reconfig = (id: string | undefined): void => {
    if (id === undefined) pendingSince = undefined;
    else if (pendingSince?.id !== id) pendingSince = { id, at: now() };
    reconfigPending.set(pendingSince ? (now() - pendingSince.at) / 1000 : 0);
  };
  const batchEvents = m.counter('consensus_batch_fetch_events_total', 'Batches a proposal named that were missing here: asked for, received in answers, served to others; proposals that waited for batches, and that were dropped without them', ['event']);
  for (const event of BATCH_EVENTS) batchEvents.inc({ event }, 0);
  /** Brings the batch counters up to `counts` (the inbound path's running totals). */
  const seenBatch: Record<string, number> = {};
  const batches = (held: { size: number; bytes: number }, counts: Readonly<Record<(typeof BATCH_EVENTS)[number], number>>): void => {
    batchBytes.set(held.bytes);
    batchCount.set(held.size);
    for (const event of BATCH_EVENTS) {
      const d = counts[event] - (seenBatch[event] ?? 0);
      if (d > 0) batchEvents.inc({ event }, d);
      seenBatch[event] = counts[event];
    }
  };
  for (const [methods, limits] of API_LIMITS) for (const method of methods) for (const limit of limits) apiRefused.inc({ method, limit }, 0);
  for (const method of READ_METHODS) apiReadCpu.inc({ method }, 0);
  halted.set(0);
  journalFailures.inc({}, 0);
  for (const outcome of REPLAY_OUTCOMES) journalReplayed.inc({ outcome }, 0);
  // Series that exist from the start, so alerts see the first event as an increase from 0.
  for (const what of SIGNED_KINDS) invalidSigs.inc({ what }, 0);
  for (const outcome of ['kept', 'duplicate', 'offender_cap', 'disk_cap']) evidenceKept.inc({ outcome }, 0);
  for (const kind of ['ahead', 'backwards']) blockTimeAnomalies.inc({ kind }, 0);
  if (opts.mempoolCapacity !== undefined) mempoolCapacity.set(opts.mempoolCapacity);
  if (opts.validators !== undefined) {
    validators.set(opts.validators.n);
    quorum.set(opts.validators.quorum);
    faults.set(opts.validators.f);
    // Every validator's series exists from the start, so a member that never signs shows as 0.
    for (let v = 0; v < opts.validators.n; v++) qcSignatures.inc({ validator: String(v) }, 0);
  }
  /** The validator indices with a participation series: those of the current epoch's set. */
  let seats = opts.validators?.n ?? 0;
  let proposedAt: { view: number; t: number } | undefined;
  let viewStarted = now();
  let lastBlockTs = 0;

  const observer: Required<DriverObserver> & { frameRejected(from: number, reason: string): void } = {
    epochStarted(epoch, set, _root, seated) {
      epochGauge.set(epoch);
      seatGauge.set(seated ? 1 : 0);
      validators.set(set.n);
      quorum.set(set.quorum);
      faults.set(set.f);
      for (let v = 0; v < set.n; v++) qcSignatures.inc({ validator: String(v) }, 0);
      // An index the new set does not have (a removal shrank it) names no validator: its series is
      // dropped, or its rate, 0 from here on, would count as a validator missing from every QC.
      for (let v = set.n; v < seats; v++) qcSignatures.remove({ validator: String(v) });
      seats = set.n;
    },
    committed(bs: readonly Block[], qc: QuorumCert) {
      const t = now();
      qcs.inc();
      for (const v of qc.signers) qcSignatures.inc({ validator: String(v) });
      for (const b of bs) {
        blockTxs.observe(b.txs.length);
        blockBytes.observe(b.txs.reduce((n, tx) => n + tx.length, 0));
        // A time that runs backwards is counted, not clamped to 0: a clamped histogram would
        // hide it and report a latency nobody measured. (Block validity refuses a block stamped
        // before its parent, and replicas a proposal stamped beyond their clock plus the drift.)
        const latency = t - b.header.timestampMs;
        if (latency >= 0) commitLatency.observe(latency / 1000);
        else blockTimeAnomalies.inc({ kind: 'ahead' });
        if (lastBlockTs > 0) {
          const interval = b.header.timestampMs - lastBlockTs;
          if (interval > 0) blockInterval.observe(interval / 1000);
          else blockTimeAnomalies.inc({ kind: 'backwards' });
        }
        lastBlockTs = b.header.timestampMs;
        txs.inc({}, b.txs.length);
      }
      blocks.inc({}, bs.length);
      height.set(bs.at(-1)!.header.height);
    },
    viewChanged(v, _leader, cause) {
      const t = now();
      viewDuration.observe({ cause }, (t - viewStarted) / 1000);
      viewStarted = t;
      viewChanges.inc({ cause });
      view.set(v);
    },
    timerSet(_view, ms, level) {
      viewTimeout.set(ms / 1000);
      timerLevel.set(level);
    },
    muted(peer, ms) {
      mutes.inc({ peer: peerLabel(peer) });
      mutedUntil.set({ peer: peerLabel(peer) }, (now() + ms) / 1000);
    },
    viewSkipped(_view, leader, reason) { viewsSkipped.inc({ leader: String(leader), reason }); },
    leadersSkipped(_view, skipped) { leadersSkipped.set(skipped.length); },
    proposed(named, inline) {
      proposedTxs.inc({ travel: 'batch' }, named);
      proposedTxs.inc({ travel: 'inline' }, inline);
    },
    evidence() { equivocations.inc(); },
    rejected(from, reason) {
      rejected.inc({ reason });
      offences.inc({ peer: peerLabel(from), reason });
    },
    invalidSignature(from, what) {
      // `what` is text ("vote", "qc(2,17) vote: …"): its kind only, so a label never grows with views.
      const first = what.split(/[ (]/)[0] ?? '';
      const kind = (SIGNED_KINDS as readonly string[]).includes(first) ? first : 'other';
      invalidSigs.inc({ what: kind });
      offences.inc({ peer: peerLabel(from), reason: 'invalid_signature' });
    },
    halted() { halts.inc(); halted.set(1); },
    prunedAnswer() { prunedAnswers.inc(); },
    frameRejected(from, reason) {
      const why = reason.startsWith('refused:') ? reason.slice(8) : 'undecodable';
      rejected.inc({ reason: why });
      offences.inc({ peer: peerLabel(from), reason: why });
    },
    sent(msg: ConsensusMessage) {
      sentMessages.inc({ type: msg.type });
      if (msg.type === 'proposal') proposedAt = { view: msg.view, t: now() };
      else if (msg.type === 'qc' && proposedAt?.view === msg.qc.view) {
        qcFormation.observe({ phase: ['', 'prepare', 'pre-commit', 'commit'][msg.qc.phase] ?? 'unknown' }, (now() - proposedAt.t) / 1000);
      }
    },
  };

  /** The signer, timed and counted. */
  const timedSigner = (inner: SignerPort): SignerPort => ({
    async sign(req: SignRequest) {
      const kind = req.kind === 'vote' ? `vote-${req.phase}` : req.kind;
      const stop = signerLatency.startTimer({ kind });
      try {
        const sig = await inner.sign(req);
        signatures.inc({ kind, result: 'ok' });
        return sig;
      } catch (err) {
        signatures.inc({ kind, result: 'refused' });
        throw err;
      } finally {
        stop();
      }
    },
  });

  const evidenceOutcome = (outcome: string) => evidenceKept.inc({ outcome });
  const journal: Required<JournalObserver> = {
    groupCommitted(txs, _bytes, _removed, seconds) {
      // A batch of deletions only is a write too, but no acknowledgement waited for it.
      if (txs > 0) journalBatch.observe(txs);
      journalFsync.observe(seconds);
    },
    groupFailed() { journalFailures.inc(); },
    size(n, bytes) { journalTxs.set(n); journalBytes.set(bytes); },
    replayed(outcome, n) { journalReplayed.inc({ outcome }, n); },
  };
  const batchDisk: Required<BatchDiskObserver> = {
    written() { batchDiskWrites.inc({ result: 'done' }); },
    failed() { batchDiskWrites.inc({ result: 'failed' }); },
    skipped(holder) { batchDiskSkipped.inc({ holder: String(holder) }); },
    // Read back is not an outcome: what the caller made of it is (held, committed).
    loaded(outcome, n) { if (outcome !== 'loaded') batchDiskLoaded.inc({ outcome }, n); },
    size(n, bytes) { batchDiskCount.set(n); batchDiskBytes.set(bytes); },
  };
  const api = {
    refused: (method: string, limit: string) => apiRefused.inc({ method, limit }),
    /** Milliseconds a read call was charged (api-guard.ts), counted in seconds; a method that is no read is not a label. */
    readCpu: (method: string, ms: number) => { if (ms > 0 && READ_METHODS.includes(method)) apiReadCpu.inc({ method }, ms / 1000); },
    openStreams: apiStreams,
  };
  return { observer, timedSigner, mempool, peers, evidenceOutcome, journal, api, reoffered, batches, batchDisk, txIndex, reconfig, configVersion };
}

/** The peer label of an offence: a validator index, or 'outside' for every non-validator together (a label never grows with peer ids). */
function peerLabel(from: number | null): string {
  if (from === null) return 'unknown';
  return isOutside(from) ? 'outside' : String(from);
}
