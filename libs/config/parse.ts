// Turning file text into validated config. Every error names the file, the dotted field
// path and the reason, and all problems of a file are reported at once, not just the first.

import { isScalar, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { FedError } from '#libs/errors/index.ts';
import { confSchema, peersSchema, type Conf, natsSection } from './schema.ts';
import { parsePublicKey, parseTcpMultiaddr } from './values.ts';

export interface ConfigIssue { file: string; field: string; reason: string }

/** A peer as the services use it: identity derived, addresses deduplicated. */
export interface Peer {
  publicKey: string;
  peerId: string;
  addresses: string[];
  /** ms since the Unix epoch; 0 = never seen. */
  lastSeenMs: number;
}

export function configInvalid(file: string, issues: ConfigIssue[]): FedError<'CONFIG_INVALID'> {
  const list = issues.map((i) => `${i.field || '(file)'}: ${i.reason}`).join('; ');
  return new FedError('CONFIG_INVALID', `${file}: ${list}`, { file, issues });
}

/** Flow collections (`[` and `{`) nested deeper than this are refused before the YAML parser reads them. */
export const YAML_MAX_FLOW_DEPTH = 64;

/**
 * Why `text` nests flow collections past YAML_MAX_FLOW_DEPTH (with the line), or undefined: one pass,
 * skipping quoted scalars and comments. The yaml library's cost grows faster than the depth (a
 * 4 kB card of 2,000 nested `[` took 129 ms: fuzz/, genesis-card), and no config nests past a few.
 */
function flowTooDeep(text: string): string | undefined {
  let depth = 0;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') { line++; continue; }
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) { if (text[i] === '\\') i++; else if (text[i] === '\n') line++; }
      continue;
    }
    if (c === "'") {
      for (i++; i < text.length; i++) { if (text[i] === "'") { if (text[i + 1] === "'") { i++; continue; } break; } if (text[i] === '\n') line++; }
      continue;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
      continue;
    }
    if (c === '[' || c === '{') {
      if (++depth > YAML_MAX_FLOW_DEPTH) return `line ${line}: flow collections ([ and {) nested deeper than ${YAML_MAX_FLOW_DEPTH}`;
    } else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return undefined;
}

/**
 * YAML text → plain data; syntax errors carry line and column. Empty text is an empty mapping.
 * Duplicate keys are found here in one pass: the yaml library's own uniqueKeys check compares each
 * key with every earlier one (a 47 kB member card of 4,000 keys took 0.5 s, 230 kB 5.5 s: fuzz/).
 * An alias bomb is refused as CONFIG_INVALID (the library throws a ReferenceError past maxAliasCount).
 */
export function parseYaml(text: string, file: string): unknown {
  const deep = flowTooDeep(text);
  if (deep) throw configInvalid(file, [{ file, field: '', reason: deep }]);
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: false });
  if (doc.errors.length > 0) {
    throw configInvalid(file, doc.errors.map((e) => ({ file, field: '', reason: e.message.split('\n')[0] ?? e.message })));
  }
  const duplicates: ConfigIssue[] = [];
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const { key } of map.items) {
        const k = isScalar(key) ? key.value : key;
        if (seen.has(k)) duplicates.push({ file, field: String(k), reason: 'Map keys must be unique' });
        seen.add(k);
      }
    },
  });
  if (duplicates.length > 0) throw configInvalid(file, duplicates);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw configInvalid(file, [{ file, field: '', reason: err instanceof Error ? err.message : String(err) }]);
  }
  return data ?? {};
}

/** A zod error as CONFIG_INVALID, one issue per field (unknown keys each named). */
export function fromZod(file: string, error: z.ZodError): FedError<'CONFIG_INVALID'> {
  const issues = error.issues.flatMap((issue): ConfigIssue[] => {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ file, field: [...base, k].join('.'), reason: 'unknown field' }));
    }
    return [{ file, field: base.join('.'), reason: issue.message }];
  });
  return configInvalid(file, issues);
}

/** Validates conf.yaml data (as parsed from YAML or the JSON the store serves). */
export function parseConfObject(data: unknown, file = 'conf.yaml'): Conf {
  const r = confSchema.safeParse(data);
  if (!r.success) throw fromZod(file, r.error);
  return r.data;
}

/** Validates a `nats` section alone (the same rules as in conf.yaml and signer.yaml). */
export function parseNatsObject(data: unknown, file = 'conf.yaml'): Conf['nats'] {
  const r = natsSection.safeParse(data);
  if (!r.success) throw fromZod(`${file} nats`, r.error);
  return r.data;
}

export function parseConfText(text: string, file = 'conf.yaml'): Conf {
  return parseConfObject(parseYaml(text, file), file);
}

/** Validates peers.yaml data; entries for the same key are merged (addresses united, newest last_seen). */
export function parsePeersObject(data: unknown, file = 'peers.yaml'): Peer[] {
  const r = peersSchema.safeParse(data);
  if (!r.success) throw fromZod(file, r.error);
  const byId = new Map<string, Peer>();
  const issues: ConfigIssue[] = [];
  for (const [i, entry] of r.data.peers.entries()) {
    const id = parsePublicKey(entry.public_key);
    if (!id.ok) { issues.push({ file, field: `peers.${i}.public_key`, reason: id.reason }); continue; }
    // An address's /p2p must be the entry's own peer: another's would send this key's dials to it.
    entry.addresses.forEach((a, k) => {
      const addr = parseTcpMultiaddr(a);
      if (addr.ok && addr.value.peerId !== undefined && addr.value.peerId !== id.value.peerId) {
        issues.push({ file, field: `peers.${i}.addresses.${k}`, reason: `/p2p/${addr.value.peerId} is not this entry's peer (its public key is ${id.value.peerId})` });
      }
    });
    const peer: Peer = {
      publicKey: entry.public_key.trim(),
      peerId: id.value.peerId,
      addresses: [...new Set(entry.addresses)],
      lastSeenMs: entry.last_seen ? Date.parse(entry.last_seen) : 0,
    };
    const prev = byId.get(peer.peerId);
    byId.set(peer.peerId, prev ? mergePeer(prev, peer) : peer);
  }
  if (issues.length > 0) throw configInvalid(file, issues);
  return [...byId.values()];
}

export function parsePeersText(text: string, file = 'peers.yaml'): Peer[] {
  return parsePeersObject(parseYaml(text, file), file);
}

/** Two records of one peer: addresses united (newer first), the later last-seen kept. */
export function mergePeer(a: Peer, b: Peer): Peer {
  const [newer, older] = b.lastSeenMs >= a.lastSeenMs ? [b, a] : [a, b];
  return {
    publicKey: newer.publicKey,
    peerId: newer.peerId,
    addresses: [...new Set([...newer.addresses, ...older.addresses])],
    lastSeenMs: newer.lastSeenMs,
  };
}

/** peers.yaml text for a peer list, sorted by peer id so rewrites are stable. */
export function peersToData(peers: readonly Peer[]): { peers: Array<Record<string, unknown>> } {
  const sorted = [...peers].sort((x, y) => (x.peerId < y.peerId ? -1 : x.peerId > y.peerId ? 1 : 0));
  return {
    peers: sorted.map((p) => ({
      public_key: p.publicKey,
      addresses: p.addresses,
      ...(p.lastSeenMs > 0 ? { last_seen: new Date(p.lastSeenMs).toISOString() } : {}),
    })),
  };
}
