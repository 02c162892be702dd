// Public surface of libs/events: NATS events with protobuf payloads on subjects
// btcfed.<member>.<service>.<event>, and JetStream for what must be replayable (committed
// blocks). Must never expose a way to publish on a subject outside that scheme.

export { connectEvents } from './connection.ts';
export { natsConnectOptions } from './auth.ts';
export type { NatsConf, NatsConnectOptions } from './auth.ts';
export type { ConnectEventsOptions, EventsConnection } from './connection.ts';

export { createEvents } from './events.ts';
export type { Events, EventsDeps, EventHandler, EventMeta, EventSubscription, SubscriptionStats } from './events.ts';

export type { Codec } from './codec.ts';
export { encodeWith } from './codec.ts';

export {
  subject, patternOf, checkPattern, parseSubject,
  SUBJECT_ROOT, BLOCKS_STREAM, BLOCKS_SUBJECT, BLOCK_COMMITTED_EVENT,
} from './subjects.ts';
export type { SubjectFilter, ParsedSubject } from './subjects.ts';

export { ensureStream, publishDurable, ackHolds, replay, blocksStreamSpec } from './jetstream.ts';
export type { StreamSpec, DurableAck, StoredEvent, ReplayOptions } from './jetstream.ts';
