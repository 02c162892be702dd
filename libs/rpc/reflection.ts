// gRPC server reflection (v1 and v1alpha), built on its first call. Building it at start —
// importing @grpc/reflection and protobufjs's descriptors, loading every contract, decoding and
// indexing them, loading the reflection service's own .proto twice — cost each server about 200
// ms of CPU and the contracts some 75 more (consensus paid it twice, for its admin server), though
// most servers are never asked (bench/startup.ts). Both services are registered at once, with
// methods that pass the messages' bytes through; the first call builds the library's service,
// and each call is handed to its handler through a stream that decodes what the client sends and
// encodes what the handler writes with the library's own message types.
// Must answer exactly as the library does: it is the library that answers.

import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { errorMessage } from '#libs/errors/index.ts';

const METHOD = 'ServerReflectionInfo';
const PATHS = ['v1', 'v1alpha'].map((v) => `/grpc.reflection.${v}.ServerReflection/${METHOD}`);
const asIs = (b: Buffer): Buffer => b;

/** A reflection method as the library registers it: its message types and its handler. */
interface Built { def: grpc.MethodDefinition<unknown, unknown>; handle: grpc.handleBidiStreamingCall<unknown, unknown> }

export interface LazyReflectionOptions {
  /** The contracts to describe, loaded on the first call. */
  pkg: () => PackageDefinition;
  /** The services the server serves: only those are listed. */
  services: readonly string[];
  log: Logger;
}

/** The reflection library, loaded on the first reflection call (and by scripts/prepack.ts: a signer host keeps it). */
export const loadReflectionLibrary = () => import('@grpc/reflection');

/** Registers reflection on `server`; nothing of it is loaded before a client asks. */
export function addLazyReflection(server: Pick<grpc.Server, 'addService'>, opts: LazyReflectionOptions): void {
  let built: Promise<Map<string, Built>> | undefined;
  const build = async (): Promise<Map<string, Built>> => {
    const { ReflectionService } = await loadReflectionLibrary();
    const methods = new Map<string, Built>();
    // The library adds its services to a server: this one keeps what it is given.
    const keep = (service: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void => {
      for (const [name, def] of Object.entries(service)) methods.set(def.path, { def, handle: impl[name] as Built['handle'] });
    };
    new ReflectionService(opts.pkg(), { services: [...opts.services] }).addToServer({ addService: keep });
    return methods;
  };

  for (const path of PATHS) {
    const def: grpc.MethodDefinition<Buffer, Buffer> = {
      path, requestStream: true, responseStream: true,
      requestSerialize: asIs, requestDeserialize: asIs, responseSerialize: asIs, responseDeserialize: asIs,
    };
    server.addService({ [METHOD]: def }, {
      [METHOD]: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        // What the client sends while the library loads waits in the call's buffer.
        call.pause();
        if (!built) {
          built = build();
          // A build that fails (the contracts unreadable) is not tried again: each try would cost
          // every caller's share of ~200 ms of CPU. Said once; each call gets INTERNAL.
          built.catch((err: unknown) => opts.log.error({ err: errorMessage(err) }, 'grpc reflection could not be built: it is unavailable until this service restarts'));
        }
        built.then((methods) => serve(call, methods.get(path)), (err: unknown) => {
          call.emit('error', { code: grpc.status.INTERNAL, details: `reflection is unavailable: ${errorMessage(err)}` });
        });
      },
    });
  }
}

/** Hands `call` to the library's handler: messages decoded on the way in, encoded on the way out. */
function serve(call: grpc.ServerDuplexStream<Buffer, Buffer>, method: Built | undefined): void {
  if (!method) {
    call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: `no reflection handler for ${call.getPath()}` });
    return;
  }
  const { def, handle } = method;
  // What @grpc/reflection's handler uses of its stream: on('data'), on('end'), write and end.
  const inner = Object.assign(new EventEmitter(), {
    write: (message: unknown) => call.write(def.responseSerialize(message)),
    end: () => call.end(),
  });
  handle(inner as unknown as grpc.ServerDuplexStream<unknown, unknown>);
  call.on('data', (bytes: Buffer) => {
    let message: unknown;
    try {
      message = def.requestDeserialize(bytes);
    } catch (err) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `not a reflection request: ${errorMessage(err)}` });
      return;
    }
    inner.emit('data', message);
  });
  call.on('end', () => inner.emit('end'));
  call.resume();
}
