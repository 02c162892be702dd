// The consensus service as an observer (node.role: observer): no signer, no engine, no votes.
// It follows the chain through its gateway (services/consensus/follower.ts: every block and
// commit QC verified against the genesis validator set before it is stored), serves the read side
// of ConsensusService from its own store, serves its committed log to other observers (within the
// same per-peer and shared budgets validators apply), and hands clients' transactions to the
// validators. Shutdown: health NOT_SERVING → drain gRPC → stop following → detach → drain NATS →
// close LMDB.

import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { blockHash, createSlhDsa, paramSpec, txHash } from '#libs/crypto/index.ts';
import type { Conf } from '#libs/config/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import { logReady, setLevel } from '#libs/log/index.ts';
import { createPromMetrics, serveMetrics } from '#libs/metrics/index.ts';
import { createClient, createServer, loadBtcfedProtos } from '#libs/rpc/index.ts';
import { endpointOf, everyMethod, guardService, natsOptionsFor, refusalCounter, watchConfig, type lifecycle, type memberSecurityFromDir } from '#libs/service/index.ts';
import { genesisBlock, type Block, type QuorumCert } from '#libs/hotstuff/index.ts';
import type { ValidatorSet } from '#libs/validators/index.ts';
import type { PeerSummary } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import type { StoreServiceClient } from '#libs/gen/btcfed/v1/store.pb.ts';
import { GatewayServiceClient, PeerState } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { WIRE_MAX_VALIDATORS, decodeFrame } from '#libs/wire/index.ts';
import { CONSENSUS_SERVICE, consensusService, type Intake } from './api.ts';
import { publicApiLimits } from './api-guard.ts';
import { BlockStore } from './block-store.ts';
import { CommitSignal } from './commit-signal.ts';
import { ConsensusEpochs, paramsInForce } from './epochs.ts';
import { EvidenceLog } from './evidence.ts';
import { Follower } from './follower.ts';
import { GatewayLink } from './gateway-link.ts';
import { txSizeError } from './mempool.ts';
import { consensusMetrics } from './metrics.ts';
import { isOutside, systemClock } from './ports.ts';
import { ConsensusPublisher } from './publish.ts';
import { Retention } from './retention.ts';
import { RetiredHandOff } from './retired.ts';
import { MAX_SYNC_BLOCKS, SyncClient } from './sync.ts';
import { SignatureVerifier } from './verifier.ts';
import { TxBatcher } from './tx-batcher.ts';

/** Blocks and frames run to max_block_bytes (4 MiB by default) plus QCs: past grpc-js's 4 MiB default. */
export const BIG_MESSAGES = { 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 };
/** Validators each batch of clients' transactions goes to (rotating). */
const HAND_OFF_VALIDATORS = 2;

export interface ObserverContext {
  flags: { listen?: string | undefined; metrics?: string | undefined; gateway?: string | undefined; nats?: string | undefined; 'no-nats'?: boolean | undefined };
  dataDir: string;
  sec: ReturnType<typeof memberSecurityFromDir>;
  conf: Conf;
  /**
   * The member's store and the version of `conf` it gave: the observer watches it from there, as a
   * validator does, and applies the client limits, keep_blocks and consensus.follow live.
   */
  storeClient: StoreServiceClient;
  configVersion: number;
  /** Genesis's validator set (conf.yaml's): the epochs this observer follows start from it. */
  validators: ValidatorSet;
  log: Logger;
  life: ReturnType<typeof lifecycle>;
  /**
   * A validator added by a reconfiguration, not seated yet in the chain's epochs it has: it follows
   * as an observer until an epoch seats it, then this is called (the caller starts it as a validator).
   */
  onSeated?: (epoch: number) => void;
  /**
   * A validator a reconfiguration removed (in this epoch): it follows as an observer, and offers the
   * transactions it acknowledged and has not seen committed to the validators again (retired.ts).
   */
  retiredIn?: number;
  /**
   * A seated validator behind its peers' retention: it joins from a checkpoint as an observer
   * does, then this is called (the caller starts it as a validator again, from the checkpoint).
   */
  catchUp?: () => void;
}

export function peerStateName(s: PeerState): string {
  switch (s) {
    case PeerState.PEER_STATE_CONNECTED: return 'connected';
    case PeerState.PEER_STATE_CONNECTING: return 'connecting';
    case PeerState.PEER_STATE_DELINQUENT: return 'delinquent';
    case PeerState.PEER_STATE_DISCONNECTED: return 'disconnected';
    default: return 'unknown';
  }
}

export async function runObserver({ flags, dataDir, sec, conf, storeClient, configVersion, validators, log, life, onSeated, retiredIn, catchUp }: ObserverContext): Promise<void> {
  const c = conf.consensus;
  const dsa = createSlhDsa({ paramSet: conf.crypto.param_set, backend: conf.crypto.backend });
  const limits = { validatorCount: WIRE_MAX_VALIDATORS, signatureBytes: paramSpec(conf.crypto.param_set).signatureBytes, maxBlockTxs: c.max_block_txs, maxBlockBytes: c.max_block_bytes };
  const store = new BlockStore({ path: path.join(dataDir, 'consensus'), limits, hashBlock: blockHash, chainId: c.chain_id });
  const genesis = genesisBlock(c.chain_id, blockHash);
  // Genesis's set plus every ended epoch's proof this observer recorded (checked again).
  const epochs = ConsensusEpochs.open({ chainId: c.chain_id, genesis: validators, member: conf.node.name, dsa, store });
  const metrics = createPromMetrics({ prefix: 'btcfed_', defaultLabels: { member: conf.node.name, service: 'consensus' } });
  const m = consensusMetrics(metrics, Date.now, { validators: epochs.current.set });
  m.observer.epochStarted(epochs.current.number, epochs.current.set, epochs.current.root, false);
  const followed = metrics.counter('observer_blocks_followed_total', 'Blocks this observer verified and appended');
  const refusedRuns = metrics.counter('observer_refused_responses_total', 'Block responses refused (they did not prove themselves), by the sender\'s kind', ['sender']);
  const behind = metrics.gauge('observer_behind_blocks', 'Committed blocks the sources have shown that this observer has not appended yet');
  const served = metrics.gauge('observer_served_requests', 'Block requests this observer has answered (other observers following it)');

  const publisher = flags['no-nats'] ? undefined : await ConsensusPublisher.connect({ url: flags.nats ?? conf.nats.url, member: conf.node.name,
    log: log.child({ module: 'nats' }), source: store, metrics, auth: natsOptionsFor(conf.nats, flags.nats, dataDir) });
  const retention = new Retention({ store, keep: c.keep_blocks, log: log.child({ module: 'retention' }), metrics, ...(publisher ? { published: () => publisher.published } : {}) });
  const commits = new CommitSignal();

  let onFrame: (from: number, frame: Uint8Array) => void = () => undefined;
  const gatewayClient = createClient(GatewayServiceClient, flags.gateway ?? conf.services.gateway.listen, { security: sec.client, grpcOptions: BIG_MESSAGES });
  // An observer: its gateway tells the validators this member's consensus takes no part (a member
  // added to the set, catching up before its epoch seats it, has its views given up at once).
  const link = new GatewayLink({ client: gatewayClient, log: log.child({ module: 'gateway-link' }), role: 'observer', onFrame: (from, frame) => onFrame(from, frame) });

  // Whom to ask: the peers of consensus.follow while any is connected, else the validators; the
  // validators are anchors meanwhile (asked now and then, so a stale followed peer cannot hold us back).
  let sources: number[] = [];
  let anchors: number[] = [];
  let peers: PeerSummary[] = [];
  const follower = new Follower({
    chainId: c.chain_id, store, genesis, transport: link, clock: systemClock, log: log.child({ module: 'follower' }),
    root: { chainId: c.chain_id, publicKeys: validators.publicKeys(), dsa },
    epochs,
    epochStarted: (epoch, set, root) => {
      m.observer.epochStarted(epoch, set, root, false);
      link.setValidators(set);
      if (onSeated && set.indexOfName(conf.node.name) !== undefined) {
        follower.stop();
        onSeated(epoch);
      }
    },
    sources: () => sources,
    anchors: () => anchors,
    committed: (bs: readonly Block[], qc: QuorumCert) => { m.observer.committed(bs, qc); followed.inc({}, bs.length); publisher?.committed(bs, qc); commits.notify(); retired?.committed(bs); retention.committed(); },
    refused: (from, reason, detail) => { refusedRuns.inc({ sender: isOutside(from) ? 'observer' : 'validator' }); m.observer.rejected(from, reason, detail); },
    bootstrap: c.bootstrap,
    ...(onSeated ? { member: conf.node.name } : {}),
    ...(catchUp ? { catchUp: true, joinedCheckpoint: () => { follower.stop(); catchUp(); } } : {}),
  });
  // Serving our committed log to other observers: the validators' bounds (sync.ts), no engine.
  const sync = new SyncClient({
    chainId: c.chain_id, store, engine: { halted: false, block: () => undefined },
    verifier: new SignatureVerifier({ chainId: c.chain_id, publicKeys: validators.publicKeys(), dsa, genesisHash: genesis.hash }),
    transport: link, log: log.child({ module: 'sync' }), deliver: () => undefined,
    onRefused: (from, reason) => m.observer.rejected(from, `sync_${reason}`, ''),
  });
  const frameLimits = { ...limits, chainId: c.chain_id, maxFrameBytes: 64 << 20, maxSyncBlocks: MAX_SYNC_BLOCKS, hashBlock: blockHash };
  onFrame = (from, bytes) => {
    let frame;
    try {
      frame = decodeFrame(bytes, frameLimits);
    } catch (err) {
      m.observer.frameRejected(from, 'refused:undecodable');
      log.debug({ from, why: isFedError(err) ? err.message : errorMessage(err) }, 'frame refused');
      return;
    }
    if (frame.type === 'block-response') void follower.onResponse(from, frame.requestId, frame.blocks, frame.epochEnd, frame.oldestHeight);
    else if (frame.type === 'block-request') sync.onRequest(from, frame.requestId, frame.hashes, frame.fromHeight, frame.maxBlocks);
    else if (frame.type === 'checkpoint-response') follower.onCheckpoint(from, frame.requestId, frame.epochs, frame.tip);
    else if (frame.type === 'history-response') void follower.onHistory(from, frame.requestId, frame.summaries);
    // While it joins from a checkpoint its store is not whole: it serves no checkpoint nor history then.
    else if (frame.type === 'checkpoint-request' && !store.bootstrapping()) sync.onCheckpointRequest(from, frame.requestId, frame.fromEpoch);
    else if (frame.type === 'history-request' && !store.bootstrapping()) sync.onHistoryRequest(from, frame.requestId, frame.belowHeight, frame.max);
    // Consensus messages and transactions are for validators: an observer takes none.
    else m.observer.frameRejected(from, 'refused:not_for_observers');
  };

  // Clients' transactions: batched as a validator batches its own, then to HAND_OFF_VALIDATORS validators in turn.
  let turn = 0;
  const handOff = new TxBatcher({ chainId: c.chain_id, maxBlockBytes: c.max_block_bytes, clock: systemClock,
    send: (frame) => { const n = epochs.current.set.n; for (let k = 0; k < Math.min(HAND_OFF_VALIDATORS, n); k++) link.send(turn++ % n, frame); } });
  // A removed member: what it acknowledged as a validator goes to the validators again until committed.
  const poolLimits = { maxTxs: c.mempool_max_txs, maxBytes: c.mempool_max_txs * 1024 };
  const retired = retiredIn === undefined ? undefined : await RetiredHandOff.open({
    path: path.join(dataDir, 'consensus', 'mempool'), log: log.child({ module: 'retired' }), ...poolLimits, maxTxBytes: c.max_tx_bytes,
    isCommitted: (h) => store.hasTx(h), handOff: (tx) => handOff.add(tx, txHash(tx)), observer: m.journal,
  }, Date.now());
  const intake: Intake = {
    offer: (tx) => {
      const bad = txSizeError(tx, c.max_tx_bytes);
      if (bad) return { status: 'refused', ...bad };
      const hash = txHash(tx);
      return { status: store.hasTx(hash) ? 'duplicate' : 'added', hash };
    },
    has: () => false,
    size: 0,
    handOff: (tx, hash) => handOff.add(tx, hash),
  };

  link.setValidators(epochs.current.set);
  link.start();
  // Readers are sent here to spare the validators: the same client limits as a validator's API,
  // but for read CPU an observer's own defaults (node.role; a member being added that follows as an
  // observer keeps a validator's), which conf.yaml overrides. Reloaded live (below).
  // conf.yaml's view timings, as last reloaded: what GetStatus reports where no committed change set them.
  const viewConf = { baseTimeoutMs: c.base_timeout, idleHeartbeatMs: c.idle_heartbeat };
  const apiLimits = publicApiLimits(conf.services.consensus.limits, {
    log: log.child({ module: 'api' }), role: conf.node.role, refused: m.api.refused, readCpu: m.api.readCpu,
  });
  const server = createServer({ security: sec.server, metrics, log: log.child({ module: 'rpc' }), reflection: loadBtcfedProtos, grpcOptions: { ...BIG_MESSAGES, ...apiLimits.grpcOptions } });
  const guard = { check: { member: conf.node.name, mtls: sec.server.mode === 'mtls' }, log: log.child({ module: 'rpc' }), refused: refusalCounter(metrics) };
  const serviceName = server.addService(CONSENSUS_SERVICE, guardService(CONSENSUS_SERVICE, consensusService({
    member: conf.node.name, chainId: c.chain_id, self: 0, node: follower, store, pool: intake, evidence: new EvidenceLog(c.chain_id, store), log,
    get validators() { return epochs.current.set; },
    params: () => paramsInForce(epochs.current, viewConf),
    nextCommit: (signal) => commits.next(signal), peers: () => peers, guard: apiLimits.guard, flow: apiLimits.flow,
  }), everyMethod(CONSENSUS_SERVICE, ['client', 'operator']), guard));
  const port = await server.bind(flags.listen ?? conf.services.consensus.listen);

  const notReady = (): string[] => {
    const why: string[] = [];
    if (!link.connected) why.push('not attached to the gateway');
    if (follower.storageError) why.push(`not following: the block store cannot be written (retrying): ${follower.storageError}`);
    if (follower.failure) why.push(`stopped: ${follower.failure.message}`);
    const joining = follower.status().joining;
    if (joining) why.push(`joining from a checkpoint (${joining}): its log is not whole yet`);
    if (sources.length === 0) why.push('no source connected: no validator (nor a followed observer) to ask for blocks');
    return why;
  };
  const metricsAddr = flags.metrics ?? conf.services.consensus.metrics;
  const endpoint = metricsAddr ? await serveMetrics({ ...endpointOf(metricsAddr, 'metrics address'), registry: metrics.registry, notReady }) : undefined;
  let follow = new Set(c.follow);
  // conf.yaml edited (the store reloads it): what an observer can take live, it takes (logging.level,
  // the client limits, keep_blocks, follow). The rest (listen addresses, the chain, the role, the
  // log format) needs a restart, as on a validator.
  m.configVersion.set(configVersion);
  const stopWatch = watchConfig(storeClient, { afterVersion: configVersion }, ({ conf: next, snapshot }) => {
    apiLimits.reload(next.services.consensus.limits);
    retention.setKeep(next.consensus.keep_blocks);
    Object.assign(viewConf, { baseTimeoutMs: next.consensus.base_timeout, idleHeartbeatMs: next.consensus.idle_heartbeat });
    const nextFollow = new Set(next.consensus.follow);
    if (nextFollow.size !== follow.size || [...nextFollow].some((p) => !follow.has(p))) {
      log.info({ follow: [...nextFollow], before: [...follow] }, 'consensus.follow reloaded: asked first from the next poll');
      follow = nextFollow;
    }
    // Last: this reload's own lines are logged at the level in force when it began.
    setLevel(log, next.logging.level);
    m.configVersion.set(snapshot.version);
  }, log.child({ module: 'config' }));
  // The gateway's view of the peers: who is connected decides whom the follower asks (every second).
  const poll = setInterval(() => {
    server.setServing(serviceName, notReady().length === 0);
    if (retired) m.reoffered.inc({}, retired.tick(Date.now()));
    behind.set(follower.status().behind);
    served.set(sync.served);
    m.api.openStreams.set(apiLimits.guard.limits.streams);
    apiLimits.guard.limits.sweep();
    gatewayClient.listPeers({}, new grpc.Metadata(), { deadline: new Date(Date.now() + 900) }, (err, res) => {
      if (err || !res) return;
      const connected = res.peers.filter((p) => p.state === PeerState.PEER_STATE_CONNECTED);
      const followed = connected.filter((p) => follow.has(p.peerId)).map((p) => (p.isValidator ? p.validatorIndex : link.outsideId(p.peerId)));
      anchors = connected.filter((p) => p.isValidator).map((p) => p.validatorIndex);
      sources = followed.length > 0 ? followed : anchors;
      peers = res.peers.map((p) => ({ peerId: p.peerId, state: peerStateName(p.state), validatorIndex: p.validatorIndex }));
      m.peers.set(anchors.length);
    });
  }, 1000);
  poll.unref();
  // In the order they stop: no new reads, no new requests, then the stream, NATS, LMDB.
  life.add({ name: 'grpc', run: () => server.shutdown({ graceMs: 3000 }) });
  life.add({ name: 'follower', run: () => { stopWatch(); follower.stop(); clearInterval(poll); handOff.flush(); } });
  life.add({ name: 'gateway-link', run: () => { link.close(); gatewayClient.close(); } });
  life.add({ name: 'metrics', run: () => endpoint?.close() });
  life.add({ name: 'nats', run: () => publisher?.close() });
  life.add({ name: 'mempool-journal', run: () => retired?.close() });
  life.add({ name: 'retention', run: () => retention.idle() });
  life.add({ name: 'lmdb', run: () => store.close() });
  retention.committed();
  follower.start();
  logReady(log, { grpcPort: port, observer: true, joining: onSeated !== undefined && retiredIn === undefined, ...(retired ? { retiredIn, acknowledgedPending: retired.pending } : {}), epoch: epochs.current.number, validators: epochs.current.set.n, committed: store.committedHeight(), follow: c.follow, metricsPort: endpoint?.port }, 'consensus ready');
}
