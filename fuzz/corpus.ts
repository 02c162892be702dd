// The seed corpus: fuzz/corpus/<target>/*.hex, one input per file as hex (text, so a diff shows a
// changed seed). fuzz/capture.ts writes them from the project's own encoders.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const CORPUS_DIR = new URL('./corpus/', import.meta.url).pathname;

export function loadCorpus(target: string, dir = CORPUS_DIR): Uint8Array[] {
  let names: string[];
  try { names = readdirSync(join(dir, target)).filter((n) => n.endsWith('.hex')).sort(); } catch { return []; }
  return names.map((n) => Uint8Array.from(Buffer.from(readFileSync(join(dir, target, n), 'utf8').replace(/\s+/g, ''), 'hex')));
}
