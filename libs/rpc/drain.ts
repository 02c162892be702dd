// Ends a server's open streams when it begins to shut down. grpc-js's tryShutdown waits for every
// call in flight, and a stream that carries a watch (the store's WatchConfig, consensus's
// StreamCommits, the gateway's Attach, health's Watch) never ends by itself: each stop of a store
// or gateway waited out its whole grace period (3 s) before forcing them. A drained stream ends
// at once with UNAVAILABLE, which every client of ours takes as "connect again", and its handler
// sees 'cancelled', as when a client goes, so it stops. A stream whose client has stopped reading
// cannot take its status past the writes queued before it; the grace period still bounds those.

import * as grpc from '@grpc/grpc-js';

type StreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

export interface StreamDrain {
  /** `impl` with every streaming method's calls tracked, to be ended by drain(). */
  track<Impl extends grpc.UntypedServiceImplementation>(definition: grpc.ServiceDefinition, impl: Impl): Impl;
  /** Ends every tracked open stream with UNAVAILABLE; streams opened afterwards end so at once. */
  drain(): void;
  /** Open tracked streams (for tests and logs). */
  readonly open: number;
}

const DETAILS = 'server shutting down; connect again';

function end(call: StreamCall): void {
  if (call.cancelled) return;
  call.emit('error', { code: grpc.status.UNAVAILABLE, details: DETAILS, metadata: new grpc.Metadata() });
  // grpc-js tells the handler 'cancelled' only once the HTTP/2 stream has closed; until then a
  // handler could write after this end, and a write after end destroys the call before its status
  // is sent. Marked as grpc-js marks a call its client gave up, the handlers stop now.
  call.cancelled = true;
  call.emit('cancelled', 'server shutting down');
}

export function streamDrain(): StreamDrain {
  const open = new Set<StreamCall>();
  let draining = false;
  function track<Impl extends grpc.UntypedServiceImplementation>(definition: grpc.ServiceDefinition, impl: Impl): Impl {
    const wrapped: grpc.UntypedServiceImplementation = { ...impl };
    for (const [key, method] of Object.entries(definition)) {
      if (!method.responseStream) continue;
      const name = key in impl ? key : method.originalName;
      const handler = name !== undefined ? impl[name] : undefined;
      if (name === undefined || typeof handler !== 'function') continue;
      wrapped[name] = (call: StreamCall) => {
        if (draining) { end(call); return; }
        open.add(call);
        const forget = () => { open.delete(call); };
        call.once('close', forget);
        call.once('finish', forget);
        call.once('cancelled', forget);
        (handler as (c: StreamCall) => void)(call);
      };
    }
    return wrapped as Impl;
  }
  return {
    track,
    drain() {
      draining = true;
      for (const call of [...open]) end(call);
      open.clear();
    },
    get open() { return open.size; },
  };
}
