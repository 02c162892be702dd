// Pausing, resuming and resetting libp2p streams without throwing: yamux's window update on a
// stream whose connection just closed throws (StreamStateError), and such a throw out of a grpc-js
// 'drain' handler once ended the gateway process. Must never throw.

import type { Stream } from '@libp2p/interface';
import type { Logger } from '#libs/log/index.ts';
import { errorMessage } from '#libs/errors/index.ts';

/**
 * Pause and resume send yamux window updates; on a stream whose connection just closed they
 * throw (StreamStateError: Cannot write to a stream that is closed). A closed stream has
 * nothing left to pause or resume, so that is logged, never thrown into the caller.
 */
export function pauseSafely(stream: Stream, log: Logger, peerId: string): void {
  if (stream.status !== 'open' || stream.readStatus !== 'readable') return;
  try { stream.pause(); } catch (err) { log.debug({ peerId, err: errorMessage(err) }, 'pause of a closing stream skipped'); }
}

export function resumeSafely(stream: Stream, log: Logger, peerId: string): void {
  if (stream.status !== 'open' || stream.readStatus !== 'paused') return;
  try { stream.resume(); } catch (err) { log.debug({ peerId, err: errorMessage(err) }, 'resume of a closing stream skipped'); }
}

/** Resets a stream; one that is already closed has nothing left to reset (never throws). */
export function abortQuietly(stream: Pick<Stream, 'abort'>, err: unknown): void {
  try { stream.abort(err instanceof Error ? err : new Error(String(err))); } catch { /* already closed */ }
}
