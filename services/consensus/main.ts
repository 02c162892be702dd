// The consensus service's composition root: config from the store, the engine driven by
// ConsensusDriver, signatures from the (remote) signer, frames through the gateway's Attach
// stream, blocks in LMDB, the public and admin gRPC APIs, events on NATS and metrics. With
// node.role observer it runs as an observer instead (observer.ts): no signer, no votes.
// Shutdown: health NOT_SERVING → drain gRPC → stop the driver → detach → drain NATS → close LMDB.
//
//   node services/consensus/main.ts --store HOST:PORT --data-dir DIR [--listen HOST:PORT]
//     [--admin-listen HOST:PORT] [--metrics HOST:PORT] [--gateway HOST:PORT] [--signer HOST:PORT]
//     [--nats URL] [--no-nats]

import path from 'node:path';
import fs from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { blockHash, createSlhDsa, paramSpec, toHex } from '#libs/crypto/index.ts';
import { FedError, errorMessage, isFedError } from '#libs/errors/index.ts';
import { createLogger, logReady, setLevel } from '#libs/log/index.ts';
import { createPromMetrics, serveMetrics } from '#libs/metrics/index.ts';
import { createClient, createServer, loadBtcfedProtos } from '#libs/rpc/index.ts';
import { endpointOf, everyMethod, fatal, fetchConfig, guardService, lifecycle, memberSecurityFromDir, natsOptionsFor, parseFlags, refusalCounter, watchConfig } from '#libs/service/index.ts';
import type { Block, Equivocation, QuorumCert } from '#libs/hotstuff/index.ts';
import { ValidatorSet } from '#libs/validators/index.ts';
import { AdminServiceService, type PeerSummary } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { GatewayServiceClient } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { StoreServiceClient } from '#libs/gen/btcfed/v1/store.pb.ts';
import { createRemoteSigner } from '../signer/client.ts';
import { adminService } from './admin.ts';
import { CONSENSUS_SERVICE, consensusService, mempoolIntake } from './api.ts';
import { publicApiLimits } from './api-guard.ts';
import { BIG_MESSAGES, peerStateName, runObserver } from './observer.ts';
import { BlockStore } from './block-store.ts';
import { BehindRetention } from './behind-retention.ts';
import { watchCatchUp } from './catching-up.ts';
import { ConsensusDriver } from './driver.ts';
import { EQUIVOCATION_STRIKES } from './penalties.ts';
import { EvidenceLog } from './evidence.ts';
import { GatewayLink } from './gateway-link.ts';
import { Inbound } from './inbound.ts';
import { BatchDisk } from './batch-disk.ts';
import { BATCH_TTL_MS } from './batches.ts';
import { Mempool } from './mempool.ts';
import { MempoolJournal } from './mempool-journal.ts';
import { consensusMetrics } from './metrics.ts';
import { systemClock } from './ports.ts';
import { ConsensusPublisher } from './publish.ts';
import { Retention } from './retention.ts';
import { MAX_SYNC_BLOCKS } from './sync.ts';
import { ConsensusEpochs, paramsInForce } from './epochs.ts';
import type { EpochChangeProof } from '#libs/verify/index.ts';
import { CommitSignal } from './commit-signal.ts';
import { assertSignerIdentity } from './signer-identity.ts';
import { SignerHealth } from './signer-health.ts';


/** How long a stop waits for the driver's step under way (its write) before the store closes. */
const DRIVER_STOP_WAIT_MS = 2_000;

const USAGE = 'usage: consensus --store HOST:PORT --data-dir DIR [--listen HOST:PORT] [--admin-listen HOST:PORT] '
  + '[--metrics HOST:PORT] [--gateway HOST:PORT] [--signer HOST:PORT] [--nats URL] [--no-nats]';
const FLAGS = {
  store: { type: 'string' }, 'data-dir': { type: 'string' }, listen: { type: 'string' }, 'admin-listen': { type: 'string' },
  metrics: { type: 'string' }, gateway: { type: 'string' }, signer: { type: 'string' }, nats: { type: 'string' }, 'no-nats': { type: 'boolean' },
} as const;

async function main(): Promise<void> {
  const boot = createLogger({ service: 'consensus' });
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2), FLAGS, USAGE);
    if (!flags.store || !flags['data-dir']) throw new FedError('CLI_INVALID', `--store and --data-dir are required\n${USAGE}`);
  } catch (err) {
    fatal(boot, err, 'reading flags');
  }
  const dataDir = path.resolve(flags['data-dir']);
  let setup;
  try {
    const sec = memberSecurityFromDir(dataDir, 'consensus');
    const storeClient = createClient(StoreServiceClient, flags.store, { security: sec.client });
    const { snapshot, conf } = await fetchConfig(storeClient);
    if (conf.validators.length === 0) throw new FedError('CONSENSUS_NO_VALIDATORS', 'conf.yaml has no validator set: join a genesis first (btcfed member join, or btcfed observer join)');
    // Who we are, by name (consensus holds no key of its own; the signer's is checked against it below).
    // conf.yaml's validators are genesis's set; the current epoch's comes from the store (below).
    const validators = ValidatorSet.fromConfig(conf.validators).withSelf({ name: conf.node.name }, { optional: true });
    setup = { sec, storeClient, snapshot, conf, validators };
  } catch (err) {
    fatal(boot, err, 'loading the config from the store');
  }
  const { sec, storeClient, conf, validators } = setup;
  const log = createLogger({ service: 'consensus', member: conf.node.name, level: conf.logging.level, format: conf.logging.format });
  const life = lifecycle(log);
  // What every way of running as an observer (by role, behind the peers' retention, removed, not
  // seated yet) starts from.
  const asObserver = { flags, dataDir, sec, conf, storeClient, configVersion: setup.snapshot.version, validators, log, life };
  if (conf.node.role === 'observer') {
    try {
      await runObserver(asObserver);
    } catch (err) {
      await life.stop('start failed');
      fatal(log, err, 'starting the observer');
    }
    return;
  }
  try {
    const c = conf.consensus;
    const paramSet = conf.crypto.param_set;
    const dsa = createSlhDsa({ paramSet, backend: conf.crypto.backend });
    const limits = { validatorCount: validators.n, signatureBytes: paramSpec(paramSet).signatureBytes, maxBlockTxs: c.max_block_txs, maxBlockBytes: c.max_block_bytes };
    const store = new BlockStore({ path: path.join(dataDir, 'consensus'), limits, hashBlock: blockHash, chainId: c.chain_id });
    // Genesis's set plus every ended epoch's proof (checked again): the epoch this member runs now.
    const epochs = ConsensusEpochs.open({ chainId: c.chain_id, genesis: validators, member: conf.node.name, dsa, store });
    const current = epochs.current;
    if (current.set.self !== undefined && store.bootstrapping()) {
      // Seated by an epoch a join from a checkpoint recorded, stopped before it cleared its mark:
      // the epochs are recorded after the history and the checkpoint, so the store is whole.
      log.info({ bootstrap: store.bootstrapping() }, 'a join from a checkpoint recorded the epoch seating this member: the store is whole');
      await store.finishBootstrap();
    }
    const catchUp = current.set.self === undefined ? undefined : store.catchUpRequested();
    if (catchUp !== undefined) {
      // Its peers pruned the blocks it lacked at its last run: it joins from a checkpoint as an
      // observer does (verified the same way), then starts again as a validator from there.
      log.warn({ why: catchUp, committed: store.committedHeight() }, 'joining from a checkpoint before taking part again');
      await store.close();
      await runObserver({ ...asObserver,
        catchUp: () => { void life.stop('caught up from a checkpoint').then(() => restartInPlace(log)); } });
      return;
    }
    if (current.set.self === undefined) {
      const seatedAgain = (epoch: number) => {
        log.warn({ epoch }, 'seated by the chain: starting again as a validator');
        void life.stop(`seated in epoch ${epoch}`).then(() => restartInPlace(log));
      };
      const removed = Array.from({ length: current.number }, (_, e) => epochs.setOf(e)).some((set) => set?.indexOfName(conf.node.name) !== undefined);
      await store.close();
      if (removed) {
        // Removed by a reconfiguration: it follows the chain as an observer (it votes no more), and
        // offers what it acknowledged as a validator and has not seen committed again (retired.ts).
        log.warn({ epoch: current.number }, `member ${conf.node.name} is not a validator of epoch ${current.number}: a reconfiguration removed it; following the chain as an observer`);
        await runObserver({ ...asObserver, retiredIn: current.number, onSeated: seatedAgain });
        return;
      }
      // Never seated yet: a member being added. It follows the chain as an observer, each epoch's
      // end proven, until an epoch seats it; then this process starts again as a validator.
      log.warn({ epoch: current.number },
        `member ${conf.node.name} is not a validator of epoch ${current.number}: following the chain until a reconfiguration seats it`);
      await runObserver({ ...asObserver, onSeated: seatedAgain });
      return;
    }
    const metrics = createPromMetrics({ prefix: 'btcfed_', defaultLabels: { member: conf.node.name, service: 'consensus' } });
    const m = consensusMetrics(metrics, Date.now, { validators: current.set, mempoolCapacity: c.mempool_max_txs });
    m.observer.epochStarted(current.number, current.set, current.root, true);
    // ACCEPTED is durable: the journal (inside the block store's dir) refills the pool after a crash.
    const poolLimits = { maxTxs: c.mempool_max_txs, maxBytes: c.mempool_max_txs * 1024 };
    const journal = new MempoolJournal({ path: path.join(dataDir, 'consensus', 'mempool'), log: log.child({ module: 'mempool-journal' }), observer: m.journal, ...poolLimits });
    // Set once the driver exists (the pool and the remote signer are made before it).
    let driverRef: ConsensusDriver | undefined;
    const pool = new Mempool({ ...poolLimits, maxTxBytes: c.max_tx_bytes, onRemoved: (keys) => journal.forget(keys), onAdded: () => driverRef?.workChanged() });
    let { restored } = await journal.replay(pool, (h) => store.hasTx(h), Date.now());

    const signerAddress = flags.signer ?? conf.services.signer.address;
    // The set of the epoch the driver runs (the signer checks requests against its own): an epoch
    // that adds members widens the QCs' bitmaps.
    const remote = createRemoteSigner({ address: signerAddress, security: sec.client, validatorCount: () => driverRef?.validatorCount ?? current.set.n,
      onRedial: (stuckMs) => log.warn({ signer: signerAddress, stuckMs }, 'connecting to the signer hung (packets dropped on the way?): dialling again'),
      onRedialFailed: (err) => log.error({ signer: signerAddress, code: isFedError(err) ? err.code : undefined, err: errorMessage(err) }, `connecting to the signer hung, and dialling again failed: ${errorMessage(err)}; still waiting on the hung attempt`) });
    await remote.ready(30_000);
    // A crash after an epoch's proof was recorded here but before the signer was shown it: show it now.
    const ended = store.endedEpochs();
    for (let e = (await remote.identity()).epoch; e < current.number; e++) {
      const r = await remote.advanceEpoch(ended[e]!);
      log.warn({ epoch: r.epoch, seated: r.seated }, 'the signer was behind this member\'s epochs: shown the proof it missed');
    }
    // The signer must be this member's, over the same set, epoch and chain: else every request is refused (or signed for another seat).
    assertSignerIdentity(current.set, await remote.identity(), { chainId: c.chain_id, paramSet, address: signerAddress });
    // The signer signs the block hash (the header, which commits to the transaction root), never
    // the transactions: leave them out of SignProposal instead of shipping megabytes per view.
    const signerReachable = metrics.gauge('consensus_signer_reachable_state', '1 while this member\'s signer answers its requests (a refusal is an answer), 0 once one went unanswered (until one is answered)');
    signerReachable.set(1);
    const signerHealth = new SignerHealth(Date.now, (up) => {
      signerReachable.set(up ? 1 : 0);
      if (up) log.info({ signer: signerAddress }, 'the signer answers again');
      else log.error({ signer: signerAddress, why: signerHealth.problem }, 'the signer does not answer: this member cannot vote or lead');
    });
    const watched = async <T>(p: Promise<T>): Promise<T> => {
      try {
        const r = await p;
        signerHealth.answered();
        return r;
      } catch (err) {
        signerHealth.failed(err);
        throw err;
      }
    };
    const signer = {
      ...m.timedSigner({ sign: async (req) => (await watched(remote.sign(req.kind === 'proposal' ? { ...req, block: { ...req.block, txs: [] } } : req))).signature }),
      advanceEpoch: (proof: EpochChangeProof) => watched(remote.advanceEpoch(proof)),
    };

    const publisher = flags['no-nats'] ? undefined : await ConsensusPublisher.connect({ url: flags.nats ?? conf.nats.url, member: conf.node.name, log: log.child({ module: 'nats' }), source: store, metrics,
      auth: natsOptionsFor(conf.nats, flags.nats, dataDir), retention: { maxAgeMs: c.blocks_stream_max_age, maxBytes: c.blocks_stream_max_bytes } });
    const retention = new Retention({ store, keep: c.keep_blocks, log: log.child({ module: 'retention' }), metrics, ...(publisher ? { published: () => publisher.published } : {}) });
    const evidence = new EvidenceLog(c.chain_id, store, (epoch, i) => { const set = epochs.setOf(epoch); return set?.has(i) ? set.byIndex(i).name : undefined; });
    const commits = new CommitSignal();
    const timeouts = { baseMs: c.base_timeout, multiplier: c.timeout_multiplier, capMs: c.max_timeout };
    let inbound: Inbound | undefined;
    const gatewayClient = createClient(GatewayServiceClient, flags.gateway ?? conf.services.gateway.listen, { security: sec.client, grpcOptions: BIG_MESSAGES });
    const link = new GatewayLink({
      client: gatewayClient,
      log: log.child({ module: 'gateway-link' }),
      onFrame: (from, frame) => inbound?.onFrame(from, frame),
      // Transactions restored from the journal go to the validators once we can reach them.
      onReady: () => { for (const tx of restored) inbound?.gossip(tx); restored = []; },
      onPresence: (validator, present) => driverRef?.peerPresence(validator, present),
    });
    const behind = new BehindRetention(() => epochs.current.set.f);
    /** A block committed since this process started: until then it may be far behind (catching-up.ts). */
    let committedHere = false;
    /** The catching-up word (below); a commit pokes it, and one may come before it is made. */
    let syncWord: ReturnType<typeof watchCatchUp> | undefined;
    const behindRetention = (from: number, oldestHeight: number) => {
      if (c.bootstrap === 'replay') return;
      const peers = behind.answered(from);
      if (!peers) return;
      const why = `peers ${peers.join(', ')} pruned the blocks above height ${store.committedHeight()} (one keeps from ${oldestHeight})`;
      log.warn({ peers, oldestHeight, committed: store.committedHeight() },
        'behind the peers\' retention (consensus.keep_blocks): starting again to join from a checkpoint (consensus.bootstrap replay never does)');
      void store.requestCatchUp(why).then(() => life.stop('behind the peers\' retention')).then(() => restartInPlace(log),
        (err: unknown) => { behind.failed(); log.error({ err: errorMessage(err) }, 'the catch-up could not be asked for: waiting for a peer that keeps the blocks'); });
    };
    // One observer for the driver and the inbound path: metrics, NATS events, StreamCommits.
    const observer = {
      ...m.observer,
      prunedAnswer: (from: number, oldestHeight: number) => { m.observer.prunedAnswer(from, oldestHeight); behindRetention(from, oldestHeight); },
      committed: (bs: readonly Block[], qc: QuorumCert) => { committedHere = true; syncWord?.poke(); behind.committed(); m.observer.committed(bs, qc); publisher?.committed(bs, qc); commits.notify(); retention.committed(); },
      viewChanged: (v: number, leader: number, cause: string) => { m.observer.viewChanged(v, leader, cause); publisher?.viewChanged(v, leader, cause, driver.epoch, epochs.setOf(driver.epoch)); },
      evidence: (e: Equivocation) => {
        m.observer.evidence(e);
        // An equivocation is proof of a fault: it weighs EQUIVOCATION_STRIKES, a mute by itself.
        driver.penalties.strike(e.sender, EQUIVOCATION_STRIKES);
        const r = evidence.add(e, Date.now());
        if (!r.kept) {
          m.evidenceOutcome(r.reason);
          log.debug({ offender: e.sender, epoch: driver.epoch, view: e.view, reason: r.reason }, 'equivocation seen again: evidence not kept');
          return;
        }
        m.evidenceOutcome('kept');
        log.warn({ offender: e.sender, name: r.item.offenderName, epoch: Number(r.item.epoch), view: e.view, kind: r.item.kind, seq: r.item.seq }, 'equivocation: evidence kept');
        r.stored.catch((err: unknown) => log.error({ err: String(err) }, 'evidence not stored'));
        publisher?.equivocation(r.item);
      },
      // The gateway takes each epoch's set from here, in order with the new epoch's first frames.
      epochStarted: (epoch: number, set: ValidatorSet, root: Block, seated: boolean) => {
        m.observer.epochStarted(epoch, set, root, seated);
        link.setValidators(set);
        // Removed: start again in place, as the observer a removed member runs as (the epoch's proof is on disk).
        if (!seated) void life.stop(`removed in epoch ${epoch}`).then(() => restartInPlace(log));
      },
      // Named by the epoch it was checked in: the check may answer after that epoch ended, and the
      // numbers are the next set's by then.
      invalidSignature: (from: number, what: string, view: number, epoch: number) => {
        m.observer.invalidSignature(from, what, view, epoch);
        const set = epochs.setOf(epoch);
        publisher?.invalidSignature(set?.has(from) ? set.byIndex(from).peerId : '', from, what, view, epoch, set);
      },
    };
    // The engine's set, seat and leader rule are the current epoch's (the driver moves them on).
    const driver = new ConsensusDriver(
      { engine: { chainId: c.chain_id, validatorCount: current.set.n, self: current.set.selfIndex!, timeouts }, maxBlockTxs: c.max_block_txs, maxBlockBytes: c.max_block_bytes, idleHeartbeatMs: c.idle_heartbeat },
      {
        store, pool, epochs,
        signer, transport: link, clock: systemClock, log: log.child({ module: 'driver' }),
        observer,
      },
    );
    driverRef = driver;
    inbound = new Inbound({ limits: { ...limits, chainId: c.chain_id, maxFrameBytes: 64 << 20, maxSyncBlocks: MAX_SYNC_BLOCKS, hashBlock: blockHash },
      blockTime: { driftMs: c.block_time_drift, maxDelayMs: c.block_time_max_delay },
      handoffTxsPerSecond: c.handoff_txs_per_second, driver, pool: driver.pool, transport: link, clock: systemClock, log: log.child({ module: 'inbound' }), observer });
    // The batches held before a restart are held again (batch-disk.ts): a proposal naming them needs
    // no fetch. Read back in the background once the link is up (a full store is tens of megabytes to hash).
    // A cache that cannot be made (its directory unwritable) costs its use, not the member.
    const batchDisk = c.batches_on_disk
      ? await BatchDisk.open({ path: path.join(dataDir, 'consensus', 'batches'), log: log.child({ module: 'batch-disk' }), observer: m.batchDisk, bytesPerSecondPerHolder: c.max_block_bytes })
        .catch((err: unknown) => { log.error({ err: errorMessage(err) }, 'batches on disk cannot be used: batches are held in memory only'); return undefined; })
      : undefined;
    // Other validators' batches only: this member's own transactions are in its mempool journal already.
    if (batchDisk) driver.batches.keepOn({ put: (hex, b) => { if (b.holder !== driver.self) batchDisk.put(hex, b); }, forget: (hex) => batchDisk.forget(hex), renumber: (to) => batchDisk.renumber(to) });
    link.setValidators(current.set);
    // Until a commit reaches it, and through a long block sync (a restart far behind): the others
    // give this member's views up meanwhile. Said before the link attaches, so it goes with the set.
    const catchingUp = metrics.gauge('consensus_catching_up_state', '1 while this member says it is catching up (no commit has reached it since it started, or a long block sync) and its gateway tells the others it takes no part (its views are given up at once), else 0');
    syncWord = watchCatchUp({ behind: () => driver.fetchingCommit || !committedHere, log: log.child({ module: 'catch-up' }),
      say: (b) => { catchingUp.set(b ? 1 : 0); link.catchingUp(b); } });
    link.start();
    const restoring = batchDisk && (async () => {
      const held: string[] = [];
      let committed = 0;
      await batchDisk.load(Date.now(), BATCH_TTL_MS, (b) => { if (inbound?.restoreBatch(b)) held.push(toHex(b.tree.digest)); else committed++; });
      // A holder's later batches may have made room meanwhile: those are not held.
      const still = held.filter((h) => driver.batches.get(h) !== undefined).length;
      m.batchDisk.loaded('held', still);
      m.batchDisk.loaded('committed', committed);
      if (held.length + committed > 0) log.info({ held: still, committed, bytes: driver.batches.bytes }, 'batches held before the restart are held again (those whose transactions are all committed are not)');
    })().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'batches on disk could not be read back (proposals naming them fetch them)'));
    // The ListPeers poll (below) stops with the channel it calls: a call on a closed channel
    // throws, and during the gRPC servers' grace period it crashed the shutdown ('stopped' never logged).
    let poll: NodeJS.Timeout | undefined;
    life.add({ name: 'gateway-link', run: () => { clearInterval(poll); link.close(); gatewayClient.close(); } });

    // Declared before the servers exist: a GetStatus right after bind must not meet an uninitialised binding (it answered INTERNAL).
    let peers: PeerSummary[] = [];
    // Each client (certificate) of the public API, and all of them, within services.consensus.limits.
    const apiLimits = publicApiLimits(conf.services.consensus.limits, { log: log.child({ module: 'api' }), refused: m.api.refused, readCpu: m.api.readCpu });
    const server = createServer({ security: sec.server, metrics, log: log.child({ module: 'rpc' }), reflection: loadBtcfedProtos, grpcOptions: { ...BIG_MESSAGES, ...apiLimits.grpcOptions } });
    // Under mTLS the public API is for the member's client and operator certificates; AdminService for the operator's.
    const guard = { check: { member: conf.node.name, mtls: sec.server.mode === 'mtls' }, log: log.child({ module: 'rpc' }), refused: refusalCounter(metrics) };
    const consensusServiceName = server.addService(CONSENSUS_SERVICE, guardService(CONSENSUS_SERVICE, consensusService({
      member: conf.node.name, chainId: c.chain_id, get self() { return driver.self; }, node: driver, store, pool: mempoolIntake(driver.pool, driver.isCommitted, (tx, hash) => inbound?.gossip(tx, hash)), journal, evidence, log,
      get validators() { return epochs.current.set; },
      // conf.yaml's base_timeout as last reloaded (the driver reads the same object), its heartbeat as at start.
      params: () => paramsInForce(epochs.current, { baseTimeoutMs: timeouts.baseMs, idleHeartbeatMs: c.idle_heartbeat }),
      nextCommit: (signal) => commits.next(signal),
      peers: () => peers,
      guard: apiLimits.guard, flow: apiLimits.flow,
    }), everyMethod(CONSENSUS_SERVICE, ['client', 'operator']), guard));
    const port = await server.bind(flags.listen ?? conf.services.consensus.listen);
    const admin = createServer({ security: sec.server, log: log.child({ module: 'admin-rpc' }), reflection: loadBtcfedProtos });
    const adminClients = conf.services.consensus.admin_clients;
    admin.addService(AdminServiceService, guardService(AdminServiceService,
      adminService({ driver, log, validators: () => driver.validatorCount, ...(conf.tls && adminClients.length > 0 ? { allowedClients: adminClients } : {}) }),
      everyMethod(AdminServiceService, ['operator']), guard));
    const adminPort = await admin.bind(flags['admin-listen'] ?? conf.services.consensus.admin_listen);

    const metricsAddr = flags.metrics ?? conf.services.consensus.metrics;
    // Ready means: this member takes part in consensus now. /readyz (and /healthz) and the gRPC
    // health of ConsensusService say why not; /livez stays 200 (a restart would not help).
    const notReady = (): string[] => {
      const why: string[] = [];
      if (driver.failure) why.push(`failed: ${driver.failure.message}`);
      if (driver.storageError) why.push(`not voting: the block store cannot be written (retrying): ${driver.storageError}`);
      if (driver.engine.halted) why.push('halted: two conflicting commits (more than f members faulty); an operator must look');
      if (driver.paused) why.push('paused by the operator (AdminService Resume)');
      if (driver.switching) why.push(`between epochs: ${driver.switching}`);
      if (syncWord.catchingUp) why.push('catching up: no commit has reached it since it started, or it is fetching the blocks a commit needs (block sync); the validators give its views up meanwhile');
      if (driver.retired) why.push(`not a validator of epoch ${driver.epoch}: a reconfiguration removed this member`);
      if (!link.connected) why.push('not attached to the gateway');
      const signerProblem = signerHealth.problem;
      if (signerProblem) why.push(signerProblem);
      return why;
    };
    const endpoint = metricsAddr ? await serveMetrics({ ...endpointOf(metricsAddr, 'metrics address'), registry: metrics.registry, notReady }) : undefined;
    const readiness = setInterval(() => {
      server.setServing(consensusServiceName, notReady().length === 0);
      // Clients' transactions still uncommitted after a while go to the next leaders again. Not from
      // a member a change removed: it sees no later block of the new set (it starts again as an
      // observer at once, which offers them until it sees them committed: retired.ts).
      if (!driver.retired) m.reoffered.inc({}, inbound?.reofferStale(Date.now()) ?? 0);
      driver.batches.expire(Date.now());
      batchDisk?.sweep();
    }, 1000);
    readiness.unref();
    // The gateway's view of the peers, for GetStatus and the peers gauge (best effort, every 2 s).
    let compactionFailures = 0;
    poll = setInterval(() => {
      m.mempool.set(driver.pool.size);
      m.reconfig(driver.pendingChange?.id);
      if (inbound) m.batches(driver.batches, inbound.batchCounts);
      const index = store.txIndexStats();
      m.txIndex(index);
      if (index.runs.failed > compactionFailures) log.error({ failed: index.runs.failed, why: index.runs.lastFailure }, 'a compaction of the transaction index\'s runs failed: its inputs stay listed and answer; it is tried again after the next merge');
      compactionFailures = index.runs.failed;
      m.api.openStreams.set(apiLimits.guard.limits.streams);
      apiLimits.guard.limits.sweep();
      gatewayClient.listPeers({}, new grpc.Metadata(), { deadline: new Date(Date.now() + 1500) }, (err, res) => {
        if (err || !res) return;
        peers = res.peers.filter((p) => p.isValidator).map((p) => ({ peerId: p.peerId, state: peerStateName(p.state), validatorIndex: p.validatorIndex }));
        m.peers.set(peers.filter((p) => p.state === 'connected').length);
      });
    }, 2000);
    poll.unref();
    // Disk: the block store's size, the free space of its file system, and BTCFED_BLOCKS's size against
    // its limit (BtcfedDiskFilling, BtcfedBlocksStreamNearLimit), every 30 s.
    const storeBytes = metrics.gauge('consensus_store_bytes', 'Size of this member\'s block store (LMDB data file)');
    const freeBytes = metrics.gauge('consensus_data_free_bytes', 'Free bytes of the file system holding the block store, for an unprivileged user');
    const streamBytes = metrics.gauge('consensus_blocks_stream_bytes', 'Bytes held by the BTCFED_BLOCKS JetStream stream (every member on this NATS)');
    const streamLimit = metrics.gauge('consensus_blocks_stream_limit_bytes', 'BTCFED_BLOCKS\'s max_bytes (-1: no limit)');
    const storeDir = path.join(dataDir, 'consensus');
    const sampleDisk = () => {
      void fs.stat(path.join(storeDir, 'data.mdb')).then((s) => storeBytes.set(s.size), () => {});
      void fs.statfs(storeDir).then((s) => freeBytes.set(s.bavail * s.bsize), () => {});
      void publisher?.streamSize().then((s) => { if (s) { streamBytes.set(s.bytes); streamLimit.set(s.maxBytes); } });
    };
    sampleDisk();
    const diskPoll = setInterval(sampleDisk, 30_000);
    diskPoll.unref();

    // A committed change set the federation's parameters: conf.yaml's base_timeout and idle_heartbeat no longer apply.
    const overridden = (baseMs: number, idleMs: number) => {
      const p = epochs.current.params;
      if (p && (p.baseTimeoutMs !== baseMs || p.idleHeartbeatMs !== idleMs)) {
        log.warn({ epoch: epochs.current.number, committed: p, conf: { baseTimeoutMs: baseMs, idleHeartbeatMs: idleMs } },
          'conf.yaml consensus.base_timeout / idle_heartbeat differ from what a committed change set: the committed values apply (btcfed reconfigure propose --base-timeout --idle-heartbeat changes them)');
      }
    };
    overridden(c.base_timeout, c.idle_heartbeat);
    m.configVersion.set(setup.snapshot.version);
    const stopWatch = watchConfig(storeClient, { afterVersion: setup.snapshot.version }, ({ conf: next, snapshot }) => {
      const t = next.consensus;
      if (t.base_timeout !== timeouts.baseMs || t.timeout_multiplier !== timeouts.multiplier || t.max_timeout !== timeouts.capMs) {
        // The engine reads these at every timer it sets: the next view uses the new values.
        Object.assign(timeouts, { baseMs: t.base_timeout, multiplier: t.timeout_multiplier, capMs: t.max_timeout });
        log.info({ timeouts }, 'view timeouts reloaded');
      }
      overridden(t.base_timeout, t.idle_heartbeat);
      apiLimits.reload(next.services.consensus.limits);
      retention.setKeep(t.keep_blocks);
      // Last: this reload's own lines are logged at the level in force when it began.
      setLevel(log, next.logging.level);
      m.configVersion.set(snapshot.version);
    }, log.child({ module: 'config' }));

    life.add({ name: 'grpc', run: () => Promise.all([server.shutdown({ graceMs: 3000 }), admin.shutdown({ graceMs: 1000 })]) });
    life.add({ name: 'driver', run: async () => {
      const drained = driver.stop();
      stopWatch(); clearInterval(readiness); clearInterval(diskPoll); syncWord.stop();
      // The write in flight ends before the store closes; a step stuck on the signer does not hold the stop.
      await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, DRIVER_STOP_WAIT_MS).unref())]);
    } });
    life.add({ name: 'metrics', run: () => endpoint?.close() });
    life.add({ name: 'nats', run: () => publisher?.close() });
    life.add({ name: 'mempool-journal', run: () => journal.close() });
    if (batchDisk) life.add({ name: 'batch-disk', run: async () => { await batchDisk.close(); await restoring; } });
    life.add({ name: 'retention', run: () => retention.idle() });
    life.add({ name: 'lmdb', run: () => store.close() });
    driver.start();
    retention.committed();
    logReady(log, { grpcPort: port, adminPort, epoch: driver.epoch, self: driver.self, validators: driver.validatorCount,
      baseTimeoutMs: driver.timing.timeouts.baseMs, idleHeartbeatMs: driver.timing.idleHeartbeatMs, view: driver.engine.view, committed: driver.engine.committed.header.height,
      metricsPort: endpoint?.port }, 'consensus ready');
  } catch (err) {
    await life.stop('start failed');
    fatal(log, err, 'starting consensus');
  }
}

await main();

/**
 * The same process, started again in place (same pid, same pipes, same flags): what a member being
 * added does once an epoch seats it, so a supervisor sees no exit. Everything was stopped first.
 */
function restartInPlace(log: { error: (o: object, msg: string) => void; flush?: () => void }): void {
  log.flush?.();
  try {
    process.execve!(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], process.env as Record<string, string>);
  } catch (err) {
    // Everything is stopped: exit, so the supervisor (systemd Restart=on-failure) starts it again.
    log.error({ err: errorMessage(err) }, 'could not start again in place: exiting for the supervisor to restart this service');
    log.flush?.();
    process.exit(1);
  }
}
