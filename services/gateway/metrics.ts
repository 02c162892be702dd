// The gateway's metrics, created once from the Metrics interface so every module counts into
// the same series. Names carry their unit (`_total`, `_seconds`, `_bytes`, `_peers`).

import type { Metrics } from '#libs/metrics/index.ts';

export function gatewayMetrics(m: Metrics) {
  return {
    framesSent: m.counter('gateway_frames_sent_total', 'Consensus frames written to a peer stream'),
    framesReceived: m.counter('gateway_frames_received_total', 'Consensus frames read from validators'),
    bytesSent: m.counter('gateway_frame_bytes_sent_total', 'Consensus frame payload bytes sent'),
    bytesReceived: m.counter('gateway_frame_bytes_received_total', 'Consensus frame payload bytes received'),
    framesDropped: m.counter('gateway_frames_dropped_total',
      'Consensus frames dropped, by reason (queue_full, send_failed, delinquent, no_consumer)', ['reason']),
    framesRefused: m.counter('gateway_frames_refused_total',
      'Consensus frames or streams refused, by reason (outside_streams, outside_budget, outside_busy, muted, too_large, bad_request)', ['reason']),
    inboundQueuedFrames: m.gauge('gateway_inbound_queued_messages', 'Inbound consensus frames (messages) waiting for the consumer, over all per-peer queues'),
    inboundQueuedBytes: m.gauge('gateway_inbound_queued_bytes', 'Inbound consensus frame bytes waiting for the consumer, over all per-peer queues'),
    inboundPausedStreams: m.gauge('gateway_inbound_paused_streams', 'Validators\' consensus streams paused because their inbound queue is full'),
    mutedPeers: m.gauge('gateway_muted_peers', 'Peers whose consensus frames are dropped at the edge (muted by the consumer)'),
    inboundMutedStreams: m.gauge('gateway_inbound_muted_streams', 'Consensus streams paused because their peer is muted (no window granted: its bytes stop at the sender)'),
    dials: m.counter('gateway_dials_total', 'Dial attempts by result', ['result']),
    connectSeconds: m.histogram('gateway_connection_setup_seconds', 'From dial to an upgraded connection', [],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
    pingSeconds: m.histogram('gateway_ping_rtt_seconds', 'Ping round trip to connected peers', [],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]),
    peers: m.gauge('gateway_peers', 'Known peers by state', ['state']),
    transitions: m.counter('gateway_peer_transitions_total', 'Peer state changes (connected, disconnected, delinquent, recovered)', ['type']),
    exchange: m.counter('gateway_exchange_requests_total', 'Peer-exchange messages by direction and result', ['direction', 'result']),
    learned: m.counter('gateway_peers_learned_total', 'New peers learned through peer exchange (dialled; persisted once one connects)'),
    forgotten: m.counter('gateway_peers_forgotten_total', 'Learned peers that never connected, forgotten after their dials failed'),
    rejectedRecords: m.counter('gateway_peer_records_rejected_total',
      'Peer records or addresses refused, by reason (bad_key, bad_address, private_address, no_address, too_many, too_many_addresses, validator, cap, table_full, penalised, unreachable)', ['reason']),
    penalised: m.counter('gateway_peers_penalised_total', 'Peers whose exchange is ignored for a while, by reason', ['reason']),
    connectionsRefused: m.counter('gateway_connections_refused_total', 'Connections refused, by reason (budget, penalised, peer_connections; before the handshake: host_rate, unknown_hosts_rate)', ['reason']),
    peerStorePeers: m.gauge('gateway_peer_store_peers', 'Peers libp2p\'s peer store held when the last sweep began (it then keeps validators, the peer table\'s and those connected)'),
    peerStoreForgotten: m.counter('gateway_peer_store_forgotten_total', 'Peers swept from libp2p\'s peer store: neither known nor connected (strangers that came and went)'),
    dialAddressFailures: m.counter('gateway_dial_address_failures_total', 'Addresses that failed a dial (each then tried last)'),
    reloads: m.counter('gateway_reloads_total', 'Config versions applied, by result', ['result']),
    unapplied: m.counter('gateway_reload_unapplied_total', 'Config changes that need a restart, by field', ['field']),
    epoch: m.gauge('gateway_epoch', 'The epoch of the validator set in force (told by consensus; 0 until told)'),
    validators: m.gauge('gateway_validators', 'Validators in the set in force'),
    attached: m.gauge('gateway_attached_streams', 'Consumers attached to the Attach stream (0 or 1)'),
    presence: m.counter('gateway_presence_messages_total', 'Presence messages (a gateway telling a validator whether its consensus is attached) by direction and result', ['direction', 'result']),
    absent: m.gauge('gateway_absent_validators', 'Validators told to the consumer as absent: their gateway said their consensus detached, or every connection to them closed'),
  };
}

export type GatewayMetrics = ReturnType<typeof gatewayMetrics>;
