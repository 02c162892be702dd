// Peer state changes onto NATS (btcfed.<member>.gateway.peer.connected|disconnected|delinquent|
// recovered, payload PeerStateChanged) and into logs and metrics. Publishing is best effort: a
// NATS outage must never touch the connections themselves.

import type { Logger } from '#libs/log/index.ts';
import type { Events } from '#libs/events/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { PeerStateChanged } from '#libs/gen/btcfed/v1/events.pb.ts';
import type { PeerTransition } from './peer-table.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface PeerEventsDeps {
  member: string;
  log: Logger;
  metrics: GatewayMetrics;
  events?: Events | undefined;
  now?: () => number;
}

export function peerEventPublisher(deps: PeerEventsDeps): (t: PeerTransition) => void {
  const now = deps.now ?? Date.now;
  return (t) => {
    deps.metrics.transitions.inc({ type: t.type });
    const base = { member: deps.member, peerId: t.peerId, state: t.type, address: '', consecutiveFailures: 0, reason: '', atMs: now() };
    let msg: PeerStateChanged;
    switch (t.type) {
      case 'connected':
        deps.log.info({ peerId: t.peerId, address: t.address }, 'peer connected');
        msg = { ...base, address: t.address };
        break;
      case 'disconnected':
        deps.log.info({ peerId: t.peerId, reason: t.reason }, 'peer disconnected');
        msg = { ...base, reason: t.reason };
        break;
      case 'delinquent':
        deps.log.warn({ peerId: t.peerId, failures: t.failures, reason: t.reason }, 'peer delinquent: probing only, no consensus frames');
        msg = { ...base, consecutiveFailures: t.failures, reason: t.reason };
        break;
      case 'recovered':
        deps.log.info({ peerId: t.peerId }, 'peer recovered');
        msg = base;
        break;
      default: {
        const never: never = t;
        throw new Error(`unknown transition ${JSON.stringify(never)}`);
      }
    }
    try {
      deps.events?.publish(`peer.${t.type}`, PeerStateChanged, msg);
    } catch (err) {
      deps.log.warn({ event: t.type, err: errorMessage(err) }, 'peer event not published');
    }
  };
}
