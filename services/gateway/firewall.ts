// The gateway's first line in the kernel: iptables rules for its libp2p TCP ports that bound new
// connections per source address before the process sees them. The inbound gate
// (inbound-gate.ts) refuses a stranger's connection before its handshake, but each accepted and
// reset socket still costs the gateway's one thread ~0.13 ms, and a stranger refused simply
// connects again: only the kernel can drop its SYNs for nothing. The rules follow the gate's
// policy, looser, so the gate still decides everything within them: hosts where a validator lives
// (peers.yaml) pass untouched; any other source address (an IPv6 one: its /64, as the gate keys
// it) gets FACTOR × peers.inbound_connections_per_host new connections a second, in bursts of
// FACTOR × its burst, and holds at most `maxPerSource` connections at once; past the rate its SYNs
// are dropped, past the count it gets a reset.
// Pure: text in (what conf.yaml and peers.yaml say), text out; `btcfed firewall` applies it.

import { isIP } from 'node:net';
import type { InboundRate } from './inbound-gate.ts';

/** The rules' rate and burst per source, as a multiple of the gate's per-host ones. */
export const FACTOR = 2;
/** The chain the rules live in, hooked from INPUT for the gateway's ports. */
export const CHAIN = 'BTCFED-GATEWAY';
/** Source addresses hashlimit tracks at most (the least recently seen expire first). */
export const HASHLIMIT_MAX = 65_536;

export interface FirewallInput {
  member: string;
  family: 4 | 6;
  /** TCP ports the gateway listens on (network.addresses of this family). */
  ports: readonly number[];
  /** Where the other validators are: peers.yaml's hosts of validators (any form; DNS names are reported, not exempted). */
  validatorHosts: readonly string[];
  /** peers.inbound_connections_per_host. */
  perHost: InboundRate;
  maxPerSource: number;
}

export interface Firewall {
  /** iptables-restore (or ip6tables-restore) input, for `--noflush`: it replaces the chain's rules and nothing else. */
  restore: string;
  /** The rule that sends the gateway's new connections to the chain (for `-C`, then `-I INPUT 1`). */
  hook: string[];
  /** What could not be turned into a rule, said to the operator. */
  notes: string[];
}

/** A rate iptables takes: whole per second, else whole per minute (at least 1). */
export function hashlimitRate(perSecond: number): string {
  if (Number.isInteger(perSecond) && perSecond >= 1) return `${perSecond}/second`;
  return `${Math.max(1, Math.round(perSecond * 60))}/minute`;
}

/** The rules for one address family. Throws on input the rules cannot express. */
export function firewallRules(i: FirewallInput): Firewall {
  const ports = [...new Set(i.ports)].sort((a, b) => a - b);
  if (ports.length === 0) throw new Error(`no IPv${i.family} TCP listen address in network.addresses: nothing to protect for IPv${i.family}`);
  if (ports.length > 15) throw new Error(`${ports.length} listen ports: iptables' multiport takes at most 15`);
  if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new Error(`listen ports must be 1–65535, got ${ports.join(', ')}`);
  if (!Number.isInteger(i.maxPerSource) || i.maxPerSource < 1) throw new Error(`connections per source must be a whole number ≥ 1, got ${i.maxPerSource}`);
  const mask = i.family === 4 ? 32 : 64;
  const notes: string[] = [];
  const exempt = new Set<string>();
  for (const h of i.validatorHosts) {
    const v = isIP(h.split('%')[0]!);
    if (v === 0) { notes.push(`validator host ${h} is a DNS name: not exempted (list its address, or resolve it and run this again)`); continue; }
    if (v !== i.family) continue;
    exempt.add(h.split('%')[0]!.toLowerCase());
  }
  const rate = hashlimitRate(i.perHost.rate * FACTOR);
  const burst = Math.max(1, Math.ceil(i.perHost.burst * FACTOR));
  const name = i.family === 4 ? 'btcfed-gw' : 'btcfed-gw6';
  const lines = [
    `# btcfed firewall for member ${i.member}, IPv${i.family}: new connections to the gateway's libp2p port(s) ${ports.join(', ')}`,
    `# validators' hosts pass; any other source address${i.family === 6 ? ' (its /64)' : ''}: ${rate} in bursts of ${burst} (${FACTOR} × peers.inbound_connections_per_host), at most ${i.maxPerSource} connections at once`,
    '*filter',
    `:${CHAIN} - [0:0]`,
    ...[...exempt].sort().map((h) => `-A ${CHAIN} -s ${h}/${i.family === 4 ? 32 : 128} -j RETURN`),
    `-A ${CHAIN} -p tcp -m hashlimit --hashlimit-name ${name} --hashlimit-mode srcip --hashlimit-srcmask ${mask} --hashlimit-above ${rate} --hashlimit-burst ${burst} --hashlimit-htable-max ${HASHLIMIT_MAX} --hashlimit-htable-expire 60000 -j DROP`,
    `-A ${CHAIN} -p tcp -m connlimit --connlimit-above ${i.maxPerSource} --connlimit-mask ${mask} -j REJECT --reject-with tcp-reset`,
    'COMMIT',
    '',
  ];
  const hook = ['INPUT', '-p', 'tcp', '-m', 'multiport', '--dports', ports.join(','), '--syn', '-j', CHAIN];
  return { restore: lines.join('\n'), hook, notes };
}
