// `btcfed firewall`: the kernel's rules in front of a member's gateway (services/gateway/firewall.ts),
// made from its conf.yaml (listen ports, peers.inbound_connections_per_host) and peers.yaml (where
// the validators are). Printed for the operator to read and keep; `--apply` loads them with
// iptables-restore on this host (its current network namespace), replacing only the rules of
// their own chain, and hooks the chain from INPUT once — so it can run again after peers.yaml or
// the rates change.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { isIP } from 'node:net';
import { parseConfText, parsePeersText, parseTcpMultiaddr } from '#libs/config/index.ts';
import { FedError } from '#libs/errors/index.ts';
import { firewallRules, type Firewall } from '../services/gateway/firewall.ts';
import { validatorHosts } from '../services/gateway/inbound-gate.ts';

export interface FirewallOptions { ipv6: boolean; maxPerSource: number }

function readFile(file: string): string {
  if (!fs.existsSync(file)) throw new FedError('MEMBER_DIR_INVALID', `${file} not found: point --member at a member dir`, { file });
  return fs.readFileSync(file, 'utf8');
}

/** The rules for the member's gateway, one address family. */
export function memberFirewall(memberDir: string, o: FirewallOptions): Firewall {
  const confFile = path.join(memberDir, 'conf.yaml');
  const conf = parseConfText(readFile(confFile), confFile);
  const peersFile = path.join(memberDir, 'peers.yaml');
  const peers = parsePeersText(readFile(peersFile), peersFile);
  const family = o.ipv6 ? 6 : 4;
  const ports: number[] = [];
  for (const a of conf.network.addresses) {
    const r = parseTcpMultiaddr(a, { listen: true });
    if (!r.ok) continue; // conf.yaml's schema refused it already
    const v = isIP(r.value.host);
    if (v !== family) continue;
    if (r.value.port === 0) throw new FedError('CLI_INVALID', `network.addresses: ${a} listens on a port the system picks: the firewall needs the port (give one)`);
    ports.push(r.value.port);
  }
  const validators = new Set(conf.validators.map((v) => v.peer_id));
  const hosts = validatorHosts(peers.filter((p) => validators.has(p.peerId)).map((p) => p.addresses));
  try {
    return firewallRules({ member: conf.node.name, family, ports, validatorHosts: hosts, perHost: conf.peers.inbound_connections_per_host, maxPerSource: o.maxPerSource });
  } catch (err) {
    throw new FedError('CLI_INVALID', `${confFile}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The command that loads and hooks the rules, for the text printed without --apply. */
export function applyHint(fw: Firewall, ipv6: boolean): string {
  const t = ipv6 ? 'ip6tables' : 'iptables';
  return [
    `# load (replaces this chain's rules only):  ${t}-restore --noflush < this-file`,
    `# hook it once:  ${t} -C ${fw.hook.join(' ')} 2>/dev/null || ${t} -I ${fw.hook[0]} 1 ${fw.hook.slice(1).join(' ')}`,
  ].join('\n');
}

function run(cmd: string, args: readonly string[], input?: string): { status: number | null; stderr: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' });
  if (r.error) throw new FedError('FIREWALL_FAILED', `${cmd}: ${r.error.message} (is iptables installed, and are you root?)`);
  return { status: r.status, stderr: r.stderr.trim() };
}

/** Loads the rules and hooks their chain from INPUT unless it is hooked already; says what it did. */
export function applyFirewall(fw: Firewall, ipv6: boolean): string {
  const t = ipv6 ? 'ip6tables' : 'iptables';
  const loaded = run(`${t}-restore`, ['--noflush'], fw.restore);
  if (loaded.status !== 0) throw new FedError('FIREWALL_FAILED', `${t}-restore refused the rules: ${loaded.stderr}`);
  const [chain, ...rule] = fw.hook;
  if (run(t, ['-C', chain!, ...rule]).status === 0) return `${t}: rules of ${fw.hook.at(-1)} replaced; already hooked from ${chain}`;
  const hooked = run(t, ['-I', chain!, '1', ...rule]);
  if (hooked.status !== 0) throw new FedError('FIREWALL_FAILED', `${t} -I ${chain} refused the hook: ${hooked.stderr}`);
  return `${t}: rules of ${fw.hook.at(-1)} loaded and hooked first in ${chain} for TCP SYNs to port(s) ${rule[rule.indexOf('--dports') + 1]}`;
}
