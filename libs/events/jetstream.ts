// JetStream for facts that must survive restarts and be replayable — committed blocks above
// all: an idempotent stream definition, de-duplicated publishing (Nats-Msg-Id) that can expect
// the subject's last sequence (Nats-Expected-Last-Subject-Sequence), and an
// ordered replay from any sequence. Must never silently change a stream's storage or drop
// its messages to make a definition fit.

import { nanos } from '@nats-io/transport-node';
import {
  DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType,
  type JetStreamClient, type JetStreamManager, type StreamConfig, type StreamInfo,
} from '@nats-io/jetstream';
import { FedError, errorMessage } from '#libs/errors/index.ts';
import { BLOCKS_STREAM, BLOCKS_SUBJECT } from './subjects.ts';

export interface StreamSpec {
  name: string;
  subjects: string[];
  /** Oldest message kept; 0 or absent keeps forever. */
  maxAgeMs?: number;
  maxBytes?: number;
  maxMsgs?: number;
  /** How long a Nats-Msg-Id is remembered for de-duplication. Default 2 minutes (or maxAgeMs if shorter). */
  duplicateWindowMs?: number;
  /**
   * Copies kept by a NATS cluster. Absent: 1 when the stream is made, and an existing stream keeps
   * its own count, so an operator's `nats stream edit --replicas 3` is not undone at every start.
   */
  replicas?: number;
  /** Default 'file'. Cannot change once the stream exists. */
  storage?: 'file' | 'memory';
}

/** The committed-block stream: every member's block.committed, kept forever by default. */
export function blocksStreamSpec(overrides: Partial<Omit<StreamSpec, 'name' | 'subjects'>> = {}): StreamSpec {
  return { name: BLOCKS_STREAM, subjects: [BLOCKS_SUBJECT], duplicateWindowMs: 10 * 60_000, ...overrides };
}

function desiredConfig(spec: StreamSpec): Partial<StreamConfig> & { name: string } {
  const maxAgeMs = spec.maxAgeMs ?? 0;
  // The server refuses a de-duplication window longer than the retention.
  const duplicateWindowMs = spec.duplicateWindowMs ?? (maxAgeMs > 0 ? Math.min(120_000, maxAgeMs) : 120_000);
  if (maxAgeMs > 0 && duplicateWindowMs > maxAgeMs) {
    throw new FedError('EVENTS_STREAM_INVALID',
      `stream ${spec.name}: duplicateWindowMs (${duplicateWindowMs}) must not exceed maxAgeMs (${maxAgeMs})`, { stream: spec.name });
  }
  return {
    name: spec.name,
    subjects: [...spec.subjects],
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    storage: spec.storage === 'memory' ? StorageType.Memory : StorageType.File,
    max_age: nanos(maxAgeMs),
    max_bytes: spec.maxBytes ?? -1,
    max_msgs: spec.maxMsgs ?? -1,
    duplicate_window: nanos(duplicateWindowMs),
    num_replicas: spec.replicas ?? 1,
  };
}

function differs(current: StreamConfig, want: ReturnType<typeof desiredConfig>): boolean {
  const sorted = (xs: readonly string[] | undefined) => [...(xs ?? [])].sort().join('\n');
  return sorted(current.subjects) !== sorted(want.subjects)
    || current.max_age !== want.max_age
    || current.max_bytes !== want.max_bytes
    || current.max_msgs !== want.max_msgs
    || current.duplicate_window !== want.duplicate_window
    || current.num_replicas !== want.num_replicas;
}

const isStreamNotFound = (err: unknown) => err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;

/** Creates the stream, or updates it to `spec` if it differs; safe to call on every start. */
export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<{ created: boolean; info: StreamInfo }> {
  const want = desiredConfig(spec);
  for (let attempt = 0; ; attempt++) {
    let current: StreamInfo | undefined;
    try {
      current = await jsm.streams.info(spec.name);
    } catch (err) {
      if (!isStreamNotFound(err)) throw streamError(spec.name, 'read', err);
    }
    try {
      if (!current) return { created: true, info: await jsm.streams.add(want) };
    } catch (err) {
      // Another process created it between our read and add: read again and compare.
      if (attempt < 2) continue;
      throw streamError(spec.name, 'create', err);
    }
    if (current.config.storage !== want.storage) {
      throw new FedError('EVENTS_STREAM_CONFLICT',
        `stream ${spec.name} exists with ${current.config.storage} storage, configured ${want.storage}; storage cannot change in place`,
        { stream: spec.name });
    }
    if (spec.replicas === undefined) want.num_replicas = current.config.num_replicas;
    if (!differs(current.config, want)) return { created: false, info: current };
    const { name: _name, storage: _storage, retention: _retention, ...update } = want;
    try {
      return { created: false, info: await jsm.streams.update(spec.name, update) };
    } catch (err) {
      throw streamError(spec.name, 'update', err);
    }
  }
}

function streamError(stream: string, action: string, err: unknown): FedError {
  return new FedError('EVENTS_STREAM_FAILED', `cannot ${action} stream ${stream}: ${errorMessage(err)}`, { stream }, { cause: err });
}

export interface DurableAck {
  stream: string;
  seq: number;
  /** True when the stream already held a message with this msgId (nothing was stored). */
  duplicate: boolean;
}

/**
 * Publishes into a stream, acknowledged; a repeated `msgId` within the window is stored once.
 * With `expectLastSubjectSeq`, the stream stores the message only if its last message on
 * `subject` has that sequence number (0: none); otherwise the publish fails with
 * EVENTS_PUBLISH_OUT_OF_ORDER. A repeated `msgId` is answered "duplicate" before that check.
 */
export async function publishDurable(js: JetStreamClient, subject: string, bytes: Uint8Array,
  opts: { msgId: string; timeoutMs?: number; expectLastSubjectSeq?: number }): Promise<DurableAck> {
  if (/[\s*>]/.test(subject) || subject === '') {
    throw new FedError('EVENT_SUBJECT_INVALID', `cannot publish durably to ${JSON.stringify(subject)}`, { subject });
  }
  if (opts.msgId === '') throw new FedError('EVENTS_MSG_ID_REQUIRED', 'publishDurable needs a non-empty msgId');
  try {
    const expect = opts.expectLastSubjectSeq === undefined ? {} : { expect: { lastSubjectSequence: opts.expectLastSubjectSeq } };
    const ack = await js.publish(subject, bytes, { msgID: opts.msgId, timeout: opts.timeoutMs ?? 5_000, ...expect });
    return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence) {
      throw new FedError('EVENTS_PUBLISH_OUT_OF_ORDER',
        `durable publish to ${subject} refused: its last message is not at sequence ${opts.expectLastSubjectSeq} (${errorMessage(err)})`,
        { subject, msgId: opts.msgId, expected: opts.expectLastSubjectSeq }, { cause: err });
    }
    throw new FedError('EVENTS_PUBLISH_FAILED', `durable publish to ${subject} failed: ${errorMessage(err)}`,
      { subject, msgId: opts.msgId }, { cause: err });
  }
}

/**
 * Whether the stream really holds the message an acknowledgement names: its sequence number has
 * our subject and msgId. A `duplicate` ack says "already stored"; after a publish that timed out
 * across a stream-leader change, nats-server 2.9 can answer that for a message it never stored
 * (its msgId was remembered from a proposal the cluster then lost), so a durable publisher checks
 * before it moves on. A read that fails is reported as unknown (undefined), not as false.
 */
export async function ackHolds(jsm: JetStreamManager, ack: DurableAck, subject: string, msgId: string): Promise<boolean | undefined> {
  try {
    const m = await jsm.streams.getMessage(ack.stream, { seq: ack.seq });
    if (!m) return false;
    return m.subject === subject && m.header?.get('Nats-Msg-Id') === msgId;
  } catch (err) {
    if (/no message found|not found/i.test(errorMessage(err))) return false;
    return undefined;
  }
}

export interface StoredEvent {
  seq: number;
  subject: string;
  data: Uint8Array;
  /** When the stream stored it, ms since the epoch. */
  timestampMs: number;
}

export interface ReplayOptions {
  /** Only these subjects (may use wildcards). */
  filterSubject?: string;
  /** First stream sequence to deliver; default 1 (the start). */
  fromSeq?: number;
  /** Keep waiting for new messages after catching up. Default false: stop when caught up. */
  follow?: boolean;
}

/**
 * Stream messages in order through an ordered consumer (created and removed by the client).
 * Without `follow`, ends once it has delivered what the stream held when it caught up.
 */
export async function* replay(js: JetStreamClient, stream: string, opts: ReplayOptions = {}): AsyncGenerator<StoredEvent> {
  const fromSeq = opts.fromSeq ?? 1;
  const consumer = await js.consumers.get(stream, {
    ...(opts.filterSubject ? { filter_subjects: opts.filterSubject } : {}),
    ...(fromSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq } : { deliver_policy: DeliverPolicy.All }),
  });
  const messages = await consumer.consume();
  try {
    if (!opts.follow) {
      // Nothing pending and nothing delivered yet means nothing to replay: without this
      // check an empty range would wait forever for its first message.
      const info = await consumer.info();
      if (info.num_pending === 0 && info.delivered.consumer_seq === 0) return;
    }
    for await (const m of messages) {
      yield { seq: m.seq, subject: m.subject, data: m.data, timestampMs: Math.floor(m.info.timestampNanos / 1e6) };
      if (!opts.follow && m.info.pending === 0) return;
    }
  } finally {
    messages.stop();
  }
}
