// Durable files: atomic replace (temp file, fsync, rename, fsync of the directory), files moved
// or copied aside instead of overwritten, a data-dir lock, reads of files that may be missing.
// Every service that keeps state in files (the store, the signer, the CLI) uses these.
export {
  copyAside, fileShaSync, fsyncDir, lockDir, MISSING, moveAside, readIfExists, SerialQueue, sha256Hex, writeFileAtomic,
  type AtomicWriteOptions, type DirLock,
} from './durable.ts';
