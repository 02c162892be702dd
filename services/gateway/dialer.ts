// Keeps connections to the known peers: dials those that are due (exponential backoff with
// jitter after failures; the addresses one after the other, each bounded by peers.connection_timeout,
// and an address that failed is tried last next time), pings connected peers
// for latency and liveness, and feeds every success and failure into the peer table (whose
// failure counter makes a peer delinquent). A delinquent peer is only probed: redialled with
// backoff when disconnected, pinged when connected.
// Liveness is ours, not libp2p's (its connection monitor is off, node.ts): a ping has one ping
// interval (at most peers.connection_timeout) to be answered, and a failed ping closes the
// connection only when nothing at all — no answered ping, no frame — came from the peer for
// SILENT_PINGS ping intervals. A ping that times out behind a busy connection is not a dead peer:
// libp2p's monitor closing on it turned load into reconnection storms (Noise handshakes,
// identify, lost frames) at N = 21. A peer cut off by a partition is closed one or two intervals
// in and redialled, so the heal is met by a fresh dial rather than by TCP's backed-off
// retransmissions on the old connection (two intervals cost healed members up to 4 s more in the
// fault campaign).
// Dials to peers that are not validators (learned by peer exchange) run at most
// MAX_NON_VALIDATOR_DIALS at a time: a member needs connections to the validators, and a stranger
// that announces thousands of fake peers must not make every gateway spend its dial slots, TCP
// connects and handshakes on them (with 32 such dials at once, dialling announced junk took a third
// of each honest gateway's busy time and the honest commit rate to 67–75 % of the rate before).
// A learned peer that never connected is forgotten after UNPROVEN_DIALS failed dials (peer-table.ts).
// Must never dial ourselves, nor run more dials at once than its limits.

import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';
import { pingPeer, type GatewayNode } from './node.ts';
import type { PeerTable } from './peer-table.ts';
import type { GatewayMetrics } from './metrics.ts';

/** Ping intervals of silence after which a failed ping closes the connection. */
export const SILENT_PINGS = 1;
/** Dials to non-validators in flight at once (validators have the rest of maxParallelDials). */
export const MAX_NON_VALIDATOR_DIALS = 2;

export interface DialerOptions {
  connectionTimeoutMs: number;
  pingIntervalMs: number;
  maxParallelDials: number;
  /** How often due dials are looked for. */
  tickMs: number;
}

export interface DialerDeps {
  node: GatewayNode;
  table: PeerTable;
  log: Logger;
  metrics: GatewayMetrics;
  selfPeerId: string;
  /** Validators are dialled first when dials are due together. */
  isValidator?: (peerId: string) => boolean;
}

export class Dialer {
  #opts: DialerOptions;
  #deps: DialerDeps;
  #inFlight = new Set<string>();
  #pinging = new Set<string>();
  #tick: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;

  constructor(opts: DialerOptions, deps: DialerDeps) {
    this.#opts = { ...opts };
    this.#deps = deps;
  }

  start(): void {
    this.#tick = setInterval(() => this.dialDue(), this.#opts.tickMs);
    this.#ping = setInterval(() => this.#pingAll(), this.#opts.pingIntervalMs);
    this.#tick.unref();
    this.#ping.unref();
    this.dialDue();
  }

  stop(): void {
    clearInterval(this.#tick);
    clearInterval(this.#ping);
  }

  set connectionTimeoutMs(ms: number) { this.#opts.connectionTimeoutMs = ms; }

  /** How long a connected peer may send nothing before a failed ping closes its connection. */
  get silentAfterMs(): number {
    return SILENT_PINGS * this.#opts.pingIntervalMs;
  }

  /** How long one ping may take: one interval, at most a connection timeout. */
  get pingTimeoutMs(): number {
    return Math.min(this.#opts.pingIntervalMs, this.#opts.connectionTimeoutMs);
  }

  set pingIntervalMs(ms: number) {
    if (ms === this.#opts.pingIntervalMs) return;
    this.#opts.pingIntervalMs = ms;
    clearInterval(this.#ping);
    this.#ping = setInterval(() => this.#pingAll(), ms);
    this.#ping.unref();
  }

  /** Starts the dials that are due, up to the parallel limit. */
  dialDue(): void {
    const v = this.#deps.isValidator ?? (() => false);
    const due = this.#deps.table.due().sort((a, b) => Number(v(b.peerId)) - Number(v(a.peerId)));
    let others = 0;
    for (const id of this.#inFlight) if (!v(id)) others++;
    for (const e of due) {
      if (this.#inFlight.size >= this.#opts.maxParallelDials) return;
      if (this.#inFlight.has(e.peerId) || e.peerId === this.#deps.selfPeerId) continue;
      if (!v(e.peerId)) {
        if (others >= MAX_NON_VALIDATOR_DIALS) return; // validators come first in `due`: none is left
        others++;
      }
      void this.dial(e.peerId, e.addresses);
    }
  }

  async dial(peerId: string, addresses: readonly string[]): Promise<void> {
    const { node, table, metrics, log } = this.#deps;
    this.#inFlight.add(peerId);
    table.connecting(peerId);
    const started = performance.now();
    try {
      // One address at a time, in the table's order (peers.yaml's first), each with its own
      // timeout: a blackholed address costs one timeout, not the whole dial. A failed address goes last.
      const errors: string[] = [];
      let conn;
      for (const a of addresses) {
        if (node.status !== 'started') throw new Error('node stopped');
        try {
          conn = await node.dial(multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peerId}`), { signal: AbortSignal.timeout(this.#opts.connectionTimeoutMs) });
          break;
        } catch (err) {
          errors.push(`${a}: ${errorMessage(err)}`);
          metrics.dialAddressFailures.inc();
          table.demote(peerId, a);
        }
      }
      if (!conn) throw new Error(errors.join('; ') || 'no address');
      metrics.dials.inc({ result: 'ok' });
      metrics.connectSeconds.observe((performance.now() - started) / 1000);
      table.connected(peerId, conn.remoteAddr.toString());
      log.debug({ peerId, ms: Math.round(performance.now() - started), failedFirst: errors.length }, 'dialled');
    } catch (err) {
      metrics.dials.inc({ result: 'failed' });
      table.failure(peerId, 'dial', errorMessage(err));
      if (!(this.#deps.isValidator?.(peerId) ?? false) && table.forgetUnproven(peerId)) {
        metrics.forgotten.inc();
        log.debug({ peerId, err: errorMessage(err) }, 'learned peer never reached: forgotten');
      } else {
        const e = table.get(peerId);
        log.debug({ peerId, failures: e?.consecutiveFailures, retryInMs: e?.backoffMs, err: errorMessage(err) }, 'dial failed');
      }
    } finally {
      this.#inFlight.delete(peerId);
    }
  }

  #pingAll(): void {
    for (const e of this.#deps.table.all()) {
      if (e.phase !== 'connected' || this.#pinging.has(e.peerId)) continue;
      void this.ping(e.peerId);
    }
  }

  async ping(peerId: string): Promise<void> {
    const { node, table, metrics } = this.#deps;
    this.#pinging.add(peerId);
    try {
      const ms = await pingPeer(node, peerIdFromString(peerId), AbortSignal.timeout(this.pingTimeoutMs));
      metrics.pingSeconds.observe(ms / 1000);
      table.success(peerId, ms);
    } catch (err) {
      // A peer that closed meanwhile is a disconnect, not a ping failure.
      if (table.get(peerId)?.phase !== 'connected') return;
      table.failure(peerId, 'ping', errorMessage(err));
      const silentMs = table.silentMs(peerId);
      if (silentMs >= this.silentAfterMs) {
        this.#deps.log.warn({ peerId, silentMs, err: errorMessage(err) }, 'peer silent: closing its connection');
        await node.hangUp(peerIdFromString(peerId)).catch(() => { /* already closed */ });
      }
    } finally {
      this.#pinging.delete(peerId);
    }
  }
}
