// Byte helpers the engine needs on its hot path: hashes become hex map keys once, and
// equality is by content. Kept here rather than imported from libs/crypto because that
// library pulls in node:crypto and the core must stay free of it. Pure; must never
// allocate more than the result.

import type { Hash } from './types.ts';

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!];
  return s;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export const ZERO_HASH: Hash = new Uint8Array(32);

/** A short printable prefix for logs and rejections. */
export function shortHex(bytes: Uint8Array): string {
  return toHex(bytes.subarray(0, 4));
}
