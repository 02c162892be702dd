// A keyless stranger's connection flood: processes with no key the federation knows, on hosts of
// their own (127.0.0.2–5), connect to every honest gateway and hang up, over and over. Each
// connection that reaches its handshake costs the gateway's one thread ~10 ms (the thread that
// also carries every consensus frame), so the gateways must refuse the flood before the handshake
// (services/gateway/inbound-gate.ts): per host, and for all hosts without a validator together.
// The runner holds the honest commit rate to its bar; this checks the refusals were counted and
// that the strangers got no more handshakes than the shared bucket gives.

import fs from 'node:fs';
import path from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { parseConfText } from '#libs/config/index.ts';
import { strangerNode } from '../support/gateway.ts';
import { HONEST } from './federation.ts';
import { check, deltas, type Scenario } from './scenario.ts';

const connectionFlood: Scenario = {
  name: 'connection-flood', ci: false,
  async start({ fed, note }) {
    const hosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
    // The flood's bound: m0's peers.inbound_connections_unknown_hosts (devnets keep the default).
    const SHARED = parseConfText(fs.readFileSync(path.join(fed.memberDir(0), 'conf.yaml'), 'utf8')).peers.inbound_connections_unknown_hosts;
    const strangers = await Promise.all(hosts.map((from) => strangerNode(undefined, { from })));
    const targets = HONEST.map((i) => {
      const peerId = fed.peerId(i);
      return { i, addr: multiaddr(`/ip4/127.0.0.1/tcp/${fed.ports(i).libp2p}/p2p/${peerId}`), peer: peerIdFromString(peerId) };
    });
    const refused = () => Promise.all(HONEST.map(async (i) =>
      await fed.metric(i, 'gateway', 'btcfed_gateway_connections_refused_total', /reason="host_rate"/)
      + await fed.metric(i, 'gateway', 'btcfed_gateway_connections_refused_total', /reason="unknown_hosts_rate"/)));
    const refused0 = await refused();
    const admitted = new Map<number, number>(HONEST.map((i) => [i, 0]));
    let tries = 0;
    let on = true;
    const t0 = Date.now();
    const loops = strangers.flatMap((node) => targets.map(async (t) => {
      while (on) {
        tries++;
        try {
          await node.dial(t.addr, { force: true, signal: AbortSignal.timeout(2000) });
          admitted.set(t.i, admitted.get(t.i)! + 1);
          await node.hangUp(t.peer);
        } catch { await new Promise((r) => setTimeout(r, 2)); }
      }
    }));
    let seconds = 0;
    return {
      stop: async () => {
        on = false;
        await Promise.all(loops);
        seconds = (Date.now() - t0) / 1000;
        await Promise.all(strangers.map((n) => n.stop()));
      },
      async check() {
        const refused1 = await refused();
        const most = SHARED.burst + Math.ceil(SHARED.rate * seconds);
        note(`${hosts.length} keyless strangers tried ${tries} connections in ${seconds.toFixed(0)} s; handshakes given per honest gateway ${[...admitted.values()].join('/')} (bound ${most}); refused before the handshake ${deltas(refused0, refused1)}`);
        check(refused1.every((x, k) => x > refused0[k]!), 'an honest gateway refused none of the strangers\' connections');
        for (const [i, n] of admitted) check(n <= most, `m${i} gave the strangers ${n} handshakes in ${seconds.toFixed(0)} s: over the shared ${SHARED.burst} + ${SHARED.rate} a second`);
      },
    };
  },
};

export const CONNECTION_SCENARIOS: Scenario[] = [connectionFlood];
