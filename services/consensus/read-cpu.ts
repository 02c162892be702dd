// What a read call costs the event loop, measured: the milliseconds of its synchronous work —
// store reads, proofs, building and encoding its answer — charged to its client's read CPU and
// the total (client-limits.ts) as each section ends. Time spent awaiting is not counted: the
// engine runs then. grpc-js serializes and frames the answer after the handler returns, inside
// its callback: meteredSend times that too. Not counted: decoding the request, HTTP/2 flushing
// and TLS as the client's window opens, garbage collection (docs/consensus.md, "Client limits").

import type * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';

export class ReadCpu {
  readonly #charge: (ms: number) => void;
  constructor(charge: (ms: number) => void) { this.#charge = charge; }

  /** Runs `fn` (synchronous: its awaits would not be timed) and charges the time it took, thrown or not. */
  time<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.#charge(performance.now() - t0);
    }
  }
}

/** For a call no limits apply to (tests of other methods): timed by nobody. */
export const UNMETERED = new ReadCpu(() => undefined);

// The answer a handler returned, to the call whose CPU sending it is charged to. Weak: an answer
// never sent (the call was cancelled) is forgotten with it.
const answers = new WeakMap<object, ReadCpu>();

/** `answer` (a handler's response) is sent on `cpu`'s account (meteredSend). */
export function billed<T>(answer: T, cpu: ReadCpu): T {
  if (cpu !== UNMETERED && typeof answer === 'object' && answer !== null) answers.set(answer, cpu);
  return answer;
}

/**
 * `handler` with the sending of a billed answer timed and charged to its call: grpc-js serializes
 * it, frames it and hands it to HTTP/2 synchronously inside the callback (a page of 100 full blocks:
 * ~5 MB copied twice there).
 */
export function meteredSend<Req, Res>(handler: grpc.handleUnaryCall<Req, Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => handler(call, (err, value, ...rest) => {
    const cpu = typeof value === 'object' && value !== null ? answers.get(value) : undefined;
    if (cpu) cpu.time(() => callback(err, value, ...rest));
    else callback(err, value, ...rest);
  });
}
