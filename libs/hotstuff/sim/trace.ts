// The run's trace: a cheap running hash of every step (always on, for determinism checks)
// and, when asked for, one readable line per step — what a failing run prints so the
// sequence that led to a violation can be read. Must never influence the run itself.

import { shortHex } from '../bytes.ts';
import type { EngineAction, EngineEvent } from '../events.ts';
import type { ConsensusMessage } from '../types.ts';

export class Trace {
  readonly enabled: boolean;
  readonly lines: string[] = [];
  #h1 = 0x811c9dc5;
  #h2 = 0x1b873593;

  constructor(enabled: boolean) {
    this.enabled = enabled;
  }

  #mix(x: number): void {
    this.#h1 = Math.imul(this.#h1 ^ (x | 0), 0x01000193);
    this.#h2 = Math.imul(this.#h2 ^ (x | 0), 0x5bd1e995);
    this.#h2 ^= this.#h2 >>> 13;
  }

  /** Fold one step into the hash: time, member, event and every action's kind and target. */
  step(now: number, member: number, e: EngineEvent, actions: EngineAction[]): void {
    this.#mix(Math.round(now * 1000));
    this.#mix(member);
    this.#mix(e.type.length * 31 + e.type.charCodeAt(0));
    if (e.type === 'message') this.#mix(msgCode(e.message));
    this.#mix(actions.length);
    for (const a of actions) {
      this.#mix(a.type.length * 31 + a.type.charCodeAt(0) + a.type.charCodeAt(1));
      switch (a.type) {
        case 'send':
          this.#mix(a.to);
          this.#mix(msgCode(a.message));
          break;
        case 'broadcast':
          this.#mix(msgCode(a.message));
          break;
        case 'commit':
          this.#mix(a.blocks[a.blocks.length - 1]!.header.height);
          this.#mix(a.blocks[a.blocks.length - 1]!.hash[0]!);
          break;
        case 'set-timer':
          this.#mix(a.view);
          this.#mix(Math.round(a.ms));
          break;
        default:
          break;
      }
    }
  }

  line(now: number, member: number, event: string, actions: string): void {
    this.lines.push(`${now.toFixed(3).padStart(10)} #${member} ${event}${actions ? ' -> ' + actions : ''}`);
  }

  note(now: number, member: number, text: string): void {
    this.#mix(text.length);
    if (this.enabled) this.lines.push(`${now.toFixed(3).padStart(10)} #${member} ** ${text}`);
  }

  hash(): string {
    return ((this.#h1 >>> 0).toString(16).padStart(8, '0') + (this.#h2 >>> 0).toString(16).padStart(8, '0'));
  }
}

function msgCode(m: ConsensusMessage): number {
  switch (m.type) {
    case 'proposal':
      return m.view * 8 + 1 + m.block.hash[0]! * 65536;
    case 'vote':
      return m.view * 8 + 2 + m.phase * 65536 + m.sender * 1024;
    case 'new-view':
      return m.view * 8 + 3 + m.sender * 1024;
    case 'qc':
      return m.qc.view * 8 + 4 + m.qc.phase * 65536;
  }
}

export function describeMessage(m: ConsensusMessage): string {
  switch (m.type) {
    case 'proposal':
      return `PROPOSAL(v${m.view} h${m.block.header.height} ${shortHex(m.block.hash)} justify v${m.justify.view} from ${m.sender})`;
    case 'vote':
      return `VOTE(p${m.phase} v${m.view} ${shortHex(m.blockHash)} from ${m.sender})`;
    case 'new-view':
      return `NEW-VIEW(v${m.view} high v${m.highQC.view} from ${m.sender})`;
    case 'qc':
      return `QC(p${m.qc.phase} v${m.qc.view} ${shortHex(m.qc.blockHash)} via ${m.sender})`;
  }
}

export function describeEvent(e: EngineEvent): string {
  switch (e.type) {
    case 'message':
      return `recv ${describeMessage(e.message)}`;
    case 'timer-fired':
      return `timer v${e.view}`;
    case 'signature-ready':
      return `signed #${e.requestId}`;
    case 'signature-refused':
      return `sign refused #${e.requestId}`;
    case 'payload-ready':
      return `payload v${e.view} ${shortHex(e.block.hash)}`;
    case 'blocks-fetched':
      return `fetched ${e.blocks.length} blocks`;
    case 'peer-muted':
      return `${e.muted ? 'muted' : 'unmuted'} ${e.peer}`;
    case 'peer-absent':
      return `${e.absent ? 'absent' : 'present'} ${e.peer}`;
    case 'forgive':
      return `forgive ${e.peer}`;
    case 'leader-offence':
      return `offence of leader ${e.peer} v${e.view}`;
    case 'view-timed':
      return `timed v${e.view} ${e.ms}ms`;
    case 'work':
      return `work ${e.available ? 'yes' : 'no'}`;
    case 'start':
      return e.type;
  }
}

export function describeActions(actions: EngineAction[]): string {
  const parts: string[] = [];
  for (const a of actions) {
    switch (a.type) {
      case 'persist':
        parts.push(`persist(view ${a.safety.view}, voted ${a.safety.lastVoted.view}/${a.safety.lastVoted.phase}, lock v${a.safety.lockedQC.view})`);
        break;
      case 'sign':
        parts.push(`sign(${a.request.kind}${a.request.kind === 'vote' ? ' p' + a.request.phase : ''} v${a.request.view})`);
        break;
      case 'send':
        parts.push(`send ${a.to} ${describeMessage(a.message)}`);
        break;
      case 'broadcast':
        parts.push(`bcast ${describeMessage(a.message)}`);
        break;
      case 'commit':
        parts.push(`COMMIT(${a.blocks.map((b) => `h${b.header.height}:${shortHex(b.hash)}`).join(',')})`);
        break;
      case 'set-timer':
        parts.push(`timer(v${a.view}, ${a.ms.toFixed(0)}ms, level ${a.level})`);
        break;
      case 'fetch':
        parts.push(`fetch(${shortHex(a.hash)} from ${a.from})`);
        break;
      case 'request-payload':
        parts.push(`payload?(v${a.view})`);
        break;
      case 'rejected':
        parts.push(`reject(${a.reason}: ${a.detail})`);
        break;
      case 'evidence':
        parts.push(`EVIDENCE(${a.evidence.sender} v${a.evidence.view} ${a.evidence.kind})`);
        break;
      case 'view-changed':
        parts.push(`view ${a.view} (${a.cause})`);
        break;
      case 'view-skipped':
        parts.push(`skip v${a.view} (leader ${a.leader} ${a.reason})`);
        break;
      case 'halted':
        parts.push(`HALTED(h${a.height})`);
        break;
    }
  }
  return parts.join('; ');
}
