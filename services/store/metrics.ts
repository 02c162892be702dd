// The store's metrics: what reloads and requests did, and the size of what it holds.

import type { Metrics } from '#libs/metrics/index.ts';
import type { StoreEvent } from './events.ts';
import type { Snapshot } from './member-config.ts';

export function storeMetrics(metrics: Metrics) {
  const reloads = metrics.counter('store_reloads_total', 'Configuration reloads by result', ['result', 'trigger']);
  const reloadSeconds = metrics.histogram('store_reload_duration_seconds', 'From trigger to new config in force', [],
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5]);
  const peerChanges = metrics.counter('store_peer_changes_total', 'Peers added, removed or updated', ['kind']);
  const rejectedRequests = metrics.counter('store_rejected_requests_total', 'gRPC requests refused, by method and reason code', ['method', 'code']);
  const version = metrics.gauge('store_config_version', 'Version of the configuration in force');
  const peers = metrics.gauge('store_peers', 'Peers in peers.yaml');
  return {
    observe(event: StoreEvent): void {
      switch (event.type) {
        case 'config.reloaded':
          reloads.inc({ result: 'ok', trigger: event.trigger });
          reloadSeconds.observe(event.durationSeconds);
          return;
        case 'config.rejected':
          reloads.inc({ result: 'rejected', trigger: event.trigger });
          return;
        case 'peers.changed':
          peerChanges.inc({ kind: 'added' }, event.added.length);
          peerChanges.inc({ kind: 'removed' }, event.removed.length);
          peerChanges.inc({ kind: 'updated' }, event.updated.length);
          return;
        default: {
          const never: never = event;
          throw new Error(`unknown store event ${JSON.stringify(never)}`);
        }
      }
    },
    snapshot(s: Snapshot): void {
      version.set(s.version);
      peers.set(s.peers.length);
    },
    rejected: (method: string, code: string): void => rejectedRequests.inc({ method, code }),
  };
}
