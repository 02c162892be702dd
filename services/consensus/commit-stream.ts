// A server stream that holds at most a bounded number of bytes for a client that does not read,
// and lets go of a client that stops reading altogether (StreamCommits).
//
// Why not write while call.write() says true: grpc-js's server stream is an object-mode Writable
// with a high-water mark of 16 *messages*, so write() says true until 16 whole responses are
// queued in it — 16 blocks with their QCs, each freshly read from LMDB (~50 KiB for an empty block
// with its 128f QC, up to max_block_bytes for a full one). A StreamCommits client that never read
// pinned ~0.8 MiB (16–17 empty blocks) to 64 MiB (full ones) per stream, and 800 such streams took a
// validator from 383 to ~1,040 MiB. Here a message leaves the source only when fewer than
// `maxBufferedBytes` are written and not yet taken by HTTP/2 (a write's callback runs once
// HTTP/2 has taken its bytes into frames, which the client's flow-control window allows only as
// it reads); one message may always be in flight, so a block larger than the bound still goes.
//
// A stream whose oldest untaken write is older than `stallMs` is a client that stopped reading: it
// is reset (RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients report as RESOURCE_EXHAUSTED; trailers
// could not overtake the data the client does not read), the source is stopped, the Writable's
// queue dropped, and HTTP/2 frees what it held for the stream. The handler's `signal` aborts then,
// on a client's cancel and on shutdown, so a source waiting for the next commit returns at once.

import * as grpc from '@grpc/grpc-js';
import { constants as http2 } from 'node:http2';
import type { RpcHandlers } from '#libs/rpc/index.ts';
import type { StreamCommitsResponse } from '#libs/gen/btcfed/v1/consensus.pb.ts';
import { encodedLength } from './stored-reads.ts';

export interface FlowOptions {
  /** Bytes written but not yet taken by HTTP/2 before the source is asked for more (one message always may be). */
  maxBufferedBytes: number;
  /** The oldest untaken write may wait this long; then the stream is reset. */
  stallMs: number;
}

export interface FlowHooks<Res> {
  /** The message's size on the wire, or near it (it is only counted against maxBufferedBytes). */
  sizeOf(res: Res): number;
  /** The stream is being reset for stalling, with what was waiting: count and log it. */
  stalled?(call: grpc.ServerWritableStream<never, Res>, undrainedBytes: number): void;
  now?(): number;
}

export type FlowSource<Req, Res> = (req: Req, call: grpc.ServerWritableStream<Req, Res>, signal: AbortSignal) => AsyncIterable<Res>;

/** StreamCommits' bytes for one block: exactly, when it is already encoded (stored-reads.ts); else near enough for flow control: transactions, header and QC signatures. */
export function commitWireSize(r: StreamCommitsResponse): number {
  const encoded = encodedLength(r);
  if (encoded !== undefined) return encoded;
  let n = 512;
  for (const tx of r.block?.block?.txs ?? []) n += tx.length + 4;
  for (const sig of r.block?.qc?.signatures ?? []) n += sig.length + 4;
  return n;
}

/** How a pumped stream ended. */
export type FlowEnd = 'done' | 'cancelled' | 'stalled';

/** A server-stream handler like rpcHandlers().serverStream, with the flow control above. */
export function boundedStream<Req, Res>(h: RpcHandlers, options: () => FlowOptions, hooks: FlowHooks<Res>, fn: FlowSource<Req, Res>): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const abort = new AbortController();
    const o = options();
    let source: AsyncIterator<Res> | undefined;
    Promise.resolve()
      .then(() => { source = fn(call.request, call, abort.signal)[Symbol.asyncIterator](); return pumpBounded(source, call, abort, o, hooks); })
      .then(
        (end) => {
          if (end === 'done' && !call.cancelled) call.end();
          else if (end === 'stalled') resetStream(call);
        },
        (err: unknown) => { if (!abort.signal.aborted && !call.cancelled) call.emit('error', h.toStatus(err, call.getPath())); },
      )
      .finally(() => { abort.abort(); void source?.return?.(); });
  };
}

/** Writes `source` to `call` within the flow options; resolves how the stream ended (errors of the source reject). */
export async function pumpBounded<Req, Res>(source: AsyncIterator<Res>, call: grpc.ServerWritableStream<Req, Res>, abort: AbortController,
  o: FlowOptions, hooks: FlowHooks<Res>): Promise<FlowEnd> {
  const now = hooks.now ?? Date.now;
  const pending: Array<{ bytes: number; at: number }> = [];
  let buffered = 0;
  let stalled = false;
  let wake: () => void = () => {};
  let timer: NodeJS.Timeout | undefined;
  // The stall timer runs while anything is untaken, due when the oldest untaken write turns stallMs
  // old: armed with the first untaken write, and when it fires it looks again at the oldest one.
  const arm = (): void => {
    clearTimeout(timer);
    timer = undefined;
    const oldest = pending[0];
    if (!oldest) return;
    const left = oldest.at + o.stallMs - now();
    if (left <= 0) { stalled = true; abort.abort(); wake(); return; }
    timer = setTimeout(arm, left);
    timer.unref();
  };
  const taken = (): void => {
    const w = pending.shift();
    if (w) buffered -= w.bytes;
    wake();
  };
  const onCancel = (): void => { abort.abort(); wake(); };
  call.once('cancelled', onCancel);
  try {
    for (;;) {
      while (pending.length > 0 && buffered >= o.maxBufferedBytes && !abort.signal.aborted) {
        await new Promise<void>((resolve) => { wake = resolve; });
      }
      if (abort.signal.aborted || call.cancelled) break;
      const next = await source.next();
      if (next.done || abort.signal.aborted || call.cancelled) break;
      const bytes = hooks.sizeOf(next.value);
      pending.push({ bytes, at: now() });
      buffered += bytes;
      if (pending.length === 1) arm();
      call.write(next.value, taken);
    }
  } finally {
    clearTimeout(timer);
    call.off('cancelled', onCancel);
  }
  if (stalled) { hooks.stalled?.(call as grpc.ServerWritableStream<never, Res>, buffered); return 'stalled'; }
  return call.cancelled || abort.signal.aborted ? 'cancelled' : 'done';
}

interface ResettableStream { close(code: number): void; destroyed: boolean; closed: boolean; once(event: 'close', listener: () => void): unknown }

/**
 * The HTTP/2 stream under a grpc-js server call (unary or streaming). grpc-js keeps it private
 * (ServerWritableStreamImpl / ServerUnaryCallImpl → call → … nextCall → stream), so it is found by
 * shape; undefined when grpc-js moved it (api-limits.test.ts fails then: a stalled stream is not
 * reset, a read's slot is not held until its answer is taken).
 */
export function http2StreamOf(call: object): ResettableStream | undefined {
  let c: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; c && depth < 8; depth++) {
    const s = (c as { stream?: unknown }).stream as Partial<ResettableStream & { respond: unknown }> | undefined;
    if (s && typeof s.close === 'function' && typeof s.respond === 'function') return s as ResettableStream;
    c = (c as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/** Resets a stalled stream (the client sees RESOURCE_EXHAUSTED) and drops what the Writable still queues. */
export function resetStream<Req, Res>(call: grpc.ServerWritableStream<Req, Res>): void {
  const stream = http2StreamOf(call);
  if (stream && !stream.destroyed) stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
  else call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'the client stopped reading', metadata: new grpc.Metadata() });
  call.destroy();
}
