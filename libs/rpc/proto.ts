// Loads .proto files with @grpc/proto-loader for what needs descriptors at run time:
// server reflection and dynamic clients (grpcurl-like tools, tests). Service code uses the
// ts-proto output in libs/gen instead. Must never be the source of message types in services.

import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type * as protoLoader from '@grpc/proto-loader';
import { FedError, errorMessage } from '#libs/errors/index.ts';

/** The include root of the project's contracts (`proto/`), for imports like "btcfed/v1/wire.proto". */
export const PROTO_ROOT = resolve(import.meta.dirname, '../../proto');

// proto-loader and protobufjs (~75 ms of CPU to load) when descriptors are first asked for — a
// server's first reflection call (reflection.ts) — not when a service starts.
const load = createRequire(import.meta.url);
/** proto-loader, loaded on first use (also by scripts/prepack.ts: what a signer host keeps). */
export const loadProtoLoader = () => load('@grpc/proto-loader') as typeof protoLoader;

const LOAD_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

/** Loads `files` (relative to an include dir, or absolute) into one PackageDefinition. */
export function loadProtos(files: readonly string[], includeDirs: readonly string[] = [PROTO_ROOT]): protoLoader.PackageDefinition {
  try {
    return loadProtoLoader().loadSync([...files], { ...LOAD_OPTIONS, includeDirs: [...includeDirs] });
  } catch (err) {
    throw new FedError('RPC_PROTO_LOAD_FAILED', `cannot load ${files.join(', ')}: ${errorMessage(err)}`,
      { files, includeDirs }, { cause: err });
  }
}

/** Every contract under proto/btcfed/v1 — what a service hands to reflection. */
export function loadBtcfedProtos(): protoLoader.PackageDefinition {
  const files = readdirSync(join(PROTO_ROOT, 'btcfed/v1'))
    .filter((name) => name.endsWith('.proto'))
    .sort()
    .map((name) => `btcfed/v1/${name}`);
  return loadProtos(files);
}
