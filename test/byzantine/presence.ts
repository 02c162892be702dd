// Presence lies (services/gateway/presence.ts): m3, with its real libp2p key, tells every honest
// gateway again and again that its consensus is detached — and now and then that it is back —
// while its consensus goes on proposing. A gateway speaks only for its own member, so the worst
// it can do is have its own views given up at once: honest members must keep their rate (as when
// m3 stalls its own views), give up only m3's views for being absent, rate-limit its messages,
// and never take any honest member for absent.

import fs from 'node:fs';
import path from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { parseConfText } from '#libs/config/index.ts';
import { PresenceMessage } from '#libs/gen/btcfed/v1/gateway.pb.ts';
import { encodeFrame } from '../../services/gateway/framing.ts';
import { MAX_PRESENCE_MESSAGE_BYTES, PRESENCE_PROTOCOL } from '../../services/gateway/presence.ts';
import { strangerNode } from '../support/gateway.ts';
import { HONEST, sleep } from './federation.ts';
import { background, check, deltas, perHonest, type Scenario } from './scenario.ts';

const presenceLies: Scenario = {
  name: 'presence-lies', ci: false,
  async start({ fed, note }) {
    const m3Key = parseConfText(fs.readFileSync(path.join(fed.memberDir(3), 'conf.yaml'), 'utf8')).node.private_key;
    const liar = await strangerNode(m3Key);
    // With each gateway's peer id in the address, so that libp2p reuses its connection: without it
    // every message was a new connection (a handshake each, ~10 ms of the gateway's thread), a
    // connection flood that the gateways' inbound gate bounds per host (connection-flood), not the
    // lies this scenario is about.
    const targets = HONEST.map((i) => multiaddr(`/ip4/127.0.0.1/tcp/${fed.ports(i).libp2p}/p2p/${fed.peerId(i)}`));
    const gw = (name: string, labels?: RegExp) => Promise.all(HONEST.map((i) => fed.metric(i, 'gateway', name, labels)));
    const skippedAbsent = () => perHonest(fed, 'btcfed_consensus_views_skipped_total', /reason="absent"/);
    const skippedOthers = () => perHonest(fed, 'btcfed_consensus_views_skipped_total', /leader="[012]",reason="absent"/);
    const limited = () => gw('btcfed_gateway_presence_messages_total', /direction="in",result="rate_limited"/);
    // Counted from now: at start each gateway is absent to the others until its consensus attaches.
    const [skip0, limited0, others0] = [await skippedAbsent(), await limited(), await skippedOthers()];
    const counters0 = counters(await fed.metrics(0, 'gateway'));
    let sent = 0;
    const attack = background(async () => {
      // Nine in ten say "detached": m3 wants its absence believed, and to churn the others.
      const attached = sent % 10 === 9;
      await Promise.all(targets.map(async (t) => {
        try {
          const s = await liar.dialProtocol(t, PRESENCE_PROTOCOL, { signal: AbortSignal.timeout(2000) });
          // Unordered words (always taken) and the highest sequence number (no later word of m3's own
          // gateway is taken until its connections close): either way m3 speaks only for itself.
          const seq = sent % 2 === 0 ? 0 : Number.MAX_SAFE_INTEGER;
          s.send(encodeFrame(PresenceMessage.encode({ consensusAttached: attached, seq, catchingUp: sent % 3 === 0 }).finish(), MAX_PRESENCE_MESSAGE_BYTES));
          await s.close();
        } catch { /* refused (rate limited): the gateway's choice */ }
      }));
      sent++;
      await sleep(50);
    });
    return {
      stop: async () => { await attack.stop(); await liar.stop(); },
      async check() {
        const [skip1, limited1, others] = [await skippedAbsent(), await limited(), await skippedOthers()];
        const counters1 = counters(await fed.metrics(0, 'gateway'));
        const moved = [...counters1].map(([k, v]) => [k, v - (counters0.get(k) ?? 0)] as const).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]).slice(0, 16);
        note(`m0's gateway counters during the attack: ${moved.map(([k, d]) => `${k} +${d}`).join(', ')}`);
        note(`m3 told each honest gateway ${sent} times that its consensus is detached or back; views given up for an absent leader ${deltas(skip0, skip1)}; its messages rate-limited ${deltas(limited0, limited1)} times`);
        check(sent > 0, 'nothing was sent');
        check(limited1.every((x, k) => x > limited0[k]!), 'an honest gateway took every presence message of m3 (btcfed_gateway_presence_messages_total{result="rate_limited"} unchanged)');
        check(others.every((x, k) => x === others0[k]), `an honest member gave up an honest leader's view for being absent (${deltas(others0, others)})`);
      },
    };
  },
};

/** Every `_total` sample of a /metrics page, by name and labels. */
function counters(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !/_total[{ ]/.test(line)) continue;
    const at = line.lastIndexOf(' ');
    const key = line.slice(0, at).replace(/^btcfed_gateway_/, '').replace(/,?(member|service)="[^"]*"/g, '').replace(/\{,?\}|\{,/g, (x) => (x.length > 2 ? '{' : ''));
    m.set(key, Number(line.slice(at + 1)));
  }
  return m;
}

export const PRESENCE_SCENARIOS: Scenario[] = [presenceLies];
