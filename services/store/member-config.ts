// The running configuration of one member: the conf.yaml and peers.yaml in force, their
// version, and every way they change — reloads (signal, file watch), UpsertPeers and
// RemovePeer. All changes go through one serial queue, so writers never interleave; a
// reload that arrives while one runs is coalesced into a single follow-up.

import path from 'node:path';
import type { Logger } from 'pino';
import { mergePeer, parseConfText, parsePeersText, type Conf, type Peer } from '#libs/config/index.ts';
import { errorMessage, isFedError } from '#libs/errors/index.ts';
import { copyAside, fileShaSync, MISSING, moveAside, readIfExists, SerialQueue, sha256Hex, writeFileAtomic } from '#libs/files/index.ts';
import { CONF_FILE, LAST_GOOD, PEERS_FILE, peersText, type LoadedConf, type LoadedPeers } from './load.ts';
import { chooseBase, diffPeers, mergePeers, samePeers, toPeerMap, type PeerMap } from './merge.ts';
import type { StoreEvent, Trigger } from './events.ts';

const HISTORY = 32;
/**
 * Each lost race with a hand editor costs one settle (≥ 50 ms) and a merge; past this many (a
 * writer saving faster than a person can, for seconds) we write anyway rather than livelock.
 */
const MAX_WRITE_RETRIES = 60;

export interface Snapshot {
  version: number;
  conf: Conf;
  confText: string;
  confSha: string;
  peers: readonly Peer[];
  peersSha: string;
  peerId: string;
  loadedAtMs: number;
}

export interface MemberConfigDeps {
  log: Logger;
  /** Called for every event; must not throw (publishing is best effort). */
  emit(event: StoreEvent): void;
  now?: () => number;
}

interface ConfRejection { file: string; field: string; reason: string }

export class MemberConfig {
  readonly dataDir: string;
  #deps: MemberConfigDeps;
  #queue = new SerialQueue();
  #snap: Snapshot;
  #history: PeerMap[] = [];
  #seen: { conf: string; peers: string };
  #pending: { trigger: Trigger; since: number } | undefined;
  #running = false;
  #listeners = new Set<(s: Snapshot) => void>();

  constructor(dataDir: string, conf: LoadedConf, peers: LoadedPeers, deps: MemberConfigDeps) {
    this.dataDir = dataDir;
    this.#deps = deps;
    const now = this.#now();
    this.#snap = {
      version: 1, conf: conf.conf, confText: conf.text, confSha: conf.sha,
      peers: peers.peers, peersSha: peers.sha, peerId: conf.peerId, loadedAtMs: now,
    };
    this.#seen = { conf: conf.sha, peers: peers.sha };
    this.#remember(toPeerMap(peers.peers));
  }

  get snapshot(): Snapshot { return this.#snap; }

  /** Calls `fn` with every new snapshot; returns the unsubscribe function. */
  onChange(fn: (s: Snapshot) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Asks for a reload; bursts coalesce so that at most one more reload follows the running one. */
  requestReload(trigger: Trigger): Promise<void> {
    this.#pending ??= { trigger, since: this.#now() };
    if (this.#running) return Promise.resolve();
    this.#running = true;
    return this.#queue.run(async () => {
      try {
        while (this.#pending) {
          const job = this.#pending;
          this.#pending = undefined;
          await this.#reload(job.trigger, job.since);
        }
      } finally {
        this.#running = false;
      }
    });
  }

  /** Merges peers given over the API (already validated) into the list and persists it. */
  upsertPeers(peers: readonly Peer[]): Promise<{ added: number; updated: number; unchanged: number; ignoredSelf: number; version: number }> {
    return this.#queue.run(async () => {
      await this.#absorbEdits();
      const current = toPeerMap(this.#snap.peers);
      const next = new Map(current);
      let ignoredSelf = 0;
      for (const p of peers) {
        if (p.peerId === this.#snap.peerId) { ignoredSelf++; continue; }
        const prev = next.get(p.peerId);
        next.set(p.peerId, prev ? mergePeer(prev, p) : p);
      }
      const diff = diffPeers(current, next);
      const unchanged = peers.length - ignoredSelf - diff.added.length - diff.updated.length;
      if (diff.added.length + diff.updated.length > 0) await this.#changePeers(current, next, 'api');
      return { added: diff.added.length, updated: diff.updated.length, unchanged: Math.max(0, unchanged), ignoredSelf, version: this.#snap.version };
    });
  }

  removePeer(peerId: string): Promise<{ removed: boolean; version: number }> {
    return this.#queue.run(async () => {
      await this.#absorbEdits();
      const current = toPeerMap(this.#snap.peers);
      if (!current.has(peerId)) return { removed: false, version: this.#snap.version };
      const next = new Map(current);
      next.delete(peerId);
      await this.#changePeers(current, next, 'api');
      return { removed: true, version: this.#snap.version };
    });
  }

  /**
   * Before an API write replaces peers.yaml, take in a hand edit the watch has not reported
   * yet; otherwise our rename would discard it.
   */
  async #absorbEdits(): Promise<void> {
    const text = await readIfExists(path.join(this.dataDir, PEERS_FILE));
    if (text === undefined || sha256Hex(text) !== this.#seen.peers) await this.#reload('file_change', this.#now());
  }

  async #reload(trigger: Trigger, since: number): Promise<void> {
    const confFile = path.join(this.dataDir, CONF_FILE);
    const peersFile = path.join(this.dataDir, PEERS_FILE);
    const confText = await readIfExists(confFile);
    const peersText_ = await readIfExists(peersFile);
    const changed: string[] = [];
    let conf = this.#snap.conf;

    if (confText === undefined) {
      this.#reject(trigger, { file: confFile, field: '', reason: 'conf.yaml disappeared; the running configuration stays in force' });
    } else if (trigger === 'signal' || sha256Hex(confText) !== this.#seen.conf) {
      const sha = sha256Hex(confText);
      const fresh = sha !== this.#seen.conf;
      this.#seen.conf = sha;
      const r = sha === this.#snap.confSha ? this.#snap.conf : this.#validateConf(confText, confFile);
      if ('reason' in r) {
        // One backup per distinct rejected content, however often it is signalled.
        const backup = fresh ? await copyAside(confFile, confText, 'rejected') : undefined;
        this.#reject(trigger, r, backup);
      } else if (sha !== this.#snap.confSha) {
        conf = r;
        changed.push(CONF_FILE);
      }
    }

    let diff: ReturnType<typeof diffPeers> | undefined;
    if (peersText_ === undefined || sha256Hex(peersText_) !== this.#seen.peers) {
      const before = toPeerMap(this.#snap.peers);
      const edit = await this.#mergeEditedPeers(peersFile, peersText_, trigger);
      // Missing or moved aside: put ours back. Merged: write it unless the file already says it.
      const target = edit ? edit.merged : before;
      if (!edit || !samePeers(target, before) || !samePeers(target, edit.theirs)) {
        const written = await this.#applyPeers(target);
        if (!samePeers(written, before)) {
          diff = diffPeers(before, written);
          changed.push(PEERS_FILE);
        }
      }
    }

    if (changed.length === 0) return;
    if (confText !== undefined && changed.includes(CONF_FILE)) {
      this.#snap = { ...this.#snap, conf, confText, confSha: sha256Hex(confText) };
      await writeFileAtomic(confFile + LAST_GOOD, confText);
    }
    this.#bump();
    this.#deps.emit({
      type: 'config.reloaded', version: this.#snap.version, trigger, changedFiles: changed,
      confSha: this.#snap.confSha, peersSha: this.#snap.peersSha, durationSeconds: (this.#now() - since) / 1000,
    });
    if (diff) this.#emitPeersChanged(diff, trigger);
    this.#deps.log.info({ version: this.#snap.version, trigger, changed }, 'config reloaded');
  }

  #validateConf(text: string, file: string): Conf | ConfRejection {
    let conf: Conf;
    try {
      conf = parseConfText(text, file);
    } catch (err) {
      if (!isFedError(err, 'CONFIG_INVALID')) throw err;
      const first = (err.details.issues as ConfRejection[] | undefined)?.[0];
      return { file, field: first?.field ?? '', reason: err.message };
    }
    const running = this.#snap.conf.node;
    for (const field of ['name', 'private_key'] as const) {
      if (conf.node[field] !== running[field]) {
        return { file, field: `node.${field}`, reason: `node.${field} cannot change while the member runs; restart the member to change its identity` };
      }
    }
    // What the chain is made of: the services cannot all apply a change live (consensus keeps the
    // genesis set, the gateway would re-index peers), so a change would leave them disagreeing on
    // who validator i is. Refused whole; it takes a new genesis and a restart of every member.
    const was = this.#snap.conf;
    const fixed: Array<[string, unknown, unknown]> = [
      ['consensus.chain_id', conf.consensus.chain_id, was.consensus.chain_id],
      ['crypto.param_set', conf.crypto.param_set, was.crypto.param_set],
      ['validators', JSON.stringify(conf.validators), JSON.stringify(was.validators)],
    ];
    for (const [field, next, now] of fixed) {
      if (next !== now) {
        return { file, field, reason: `${field} cannot change while the member runs: every service would not apply it alike (consensus keeps the genesis set); change it with a new genesis and a restart of every member` };
      }
    }
    return conf;
  }

  /** A hand-edited peers.yaml: merged with ours, or — when unusable — moved aside and replaced by ours. */
  async #mergeEditedPeers(file: string, text: string | undefined, trigger: Trigger,
    ours: PeerMap = toPeerMap(this.#snap.peers)): Promise<{ merged: Map<string, Peer>; theirs: PeerMap } | undefined> {
    if (text === undefined) {
      this.#reject(trigger, { file, field: '', reason: 'peers.yaml disappeared; rewritten from the running peer list' });
      this.#seen.peers = MISSING;
      return undefined;
    }
    // An editor writing in place can be caught half-way (even an empty file): wait until it settles.
    const settled = await settle(file, text);
    if (settled !== text) return this.#mergeEditedPeers(file, settled, trigger, ours);
    let theirs: Map<string, Peer>;
    try {
      theirs = toPeerMap(parsePeersText(text, file).filter((p) => p.peerId !== this.#snap.peerId));
    } catch (err) {
      if (!isFedError(err, 'CONFIG_INVALID')) throw err;
      const backup = await moveAside(file, 'corrupt');
      const first = (err.details.issues as ConfRejection[] | undefined)?.[0];
      this.#reject(trigger, { file, field: first?.field ?? '', reason: err.message }, backup);
      this.#seen.peers = MISSING;
      return undefined;
    }
    const merged = mergePeers(chooseBase(this.#history, theirs), ours, theirs);
    // The edited file is itself a version an editor may build on next (it may read its own save
    // back before we rewrite it): remember it, or its next save would look like deletions.
    this.#remember(theirs);
    this.#seen.peers = sha256Hex(text);
    return { merged, theirs };
  }

  /** A peer change from the API: persisted, then versioned and announced. */
  async #changePeers(before: PeerMap, next: Map<string, Peer>, trigger: Trigger): Promise<void> {
    const written = await this.#applyPeers(next);
    this.#bump();
    this.#emitPeersChanged(diffPeers(before, written), trigger);
  }

  /** Persists `next` (plus any hand edit that lands meanwhile) and makes it the list in force. */
  async #applyPeers(next: Map<string, Peer>): Promise<Map<string, Peer>> {
    const written = await this.#writePeers(next);
    this.#snap = { ...this.#snap, peers: [...written.values()], peersSha: this.#seen.peers };
    this.#remember(written);
    return written;
  }

  #emitPeersChanged(diff: ReturnType<typeof diffPeers>, trigger: Trigger): void {
    this.#deps.emit({ type: 'peers.changed', version: this.#snap.version, ...diff, count: this.#snap.peers.length });
    this.#deps.log.info({ trigger, version: this.#snap.version, added: diff.added.length, removed: diff.removed.length, updated: diff.updated.length }, 'peers changed');
  }

  /**
   * Replaces peers.yaml with `peers`. Right before the rename it checks that the file is still
   * the one we last saw; if a hand edit landed meanwhile, it is merged in first and the write
   * retried, so our rename never discards it. Returns what was written.
   */
  async #writePeers(peers: ReadonlyMap<string, Peer>): Promise<Map<string, Peer>> {
    const file = path.join(this.dataDir, PEERS_FILE);
    let current = new Map(peers);
    for (let attempt = 0; ; attempt++) {
      const text = peersText([...current.values()]);
      const unchanged = () => attempt >= MAX_WRITE_RETRIES || fileShaSync(file) === this.#seen.peers;
      if (await writeFileAtomic(file, text, { beforeRename: unchanged })) {
        await writeFileAtomic(file + LAST_GOOD, text);
        this.#seen.peers = sha256Hex(text);
        return current;
      }
      const edit = await this.#mergeEditedPeers(file, await readIfExists(file), 'file_change', current);
      if (edit) current = edit.merged;
    }
  }

  #reject(trigger: Trigger, r: ConfRejection, backup?: string): void {
    this.#deps.emit({ type: 'config.rejected', keptVersion: this.#snap.version, trigger, file: r.file, field: r.field, reason: r.reason, backupPath: backup ?? '' });
    this.#deps.log.warn({ file: r.file, field: r.field, reason: r.reason, backup, trigger }, 'config rejected; previous config stays in force');
  }

  #remember(peers: PeerMap): void {
    this.#history.push(peers);
    if (this.#history.length > HISTORY) this.#history.shift();
  }

  #bump(): void {
    this.#snap = { ...this.#snap, version: this.#snap.version + 1, loadedAtMs: this.#now() };
    for (const fn of this.#listeners) {
      try { fn(this.#snap); } catch (err) { this.#deps.log.error({ err: errorMessage(err) }, 'config listener failed'); }
    }
  }

  #now(): number { return (this.#deps.now ?? Date.now)(); }
}

const SETTLE_MS = 50;

/** Re-reads a file until two reads SETTLE_MS apart agree (at most ~350 ms); returns the last content. */
async function settle(file: string, text: string): Promise<string | undefined> {
  let last: string | undefined = text;
  for (let i = 0; i < 7; i++) {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const now = await readIfExists(file);
    if (now === last) return now;
    last = now;
  }
  return last;
}
