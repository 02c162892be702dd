// What a failed test prints of a service's log (JSON lines, one file per service under the member
// dir's logs/): the last lines that match, cut to a readable width. A missing file is no lines.

import fs from 'node:fs/promises';

/** A pino line at warn (40), error (50) or fatal (60). */
export const WARN_OR_WORSE = /"level":(40|50|60)/;

/** The last `count` lines of the log `file` that `keep` accepts, each cut to `width` characters. */
export async function logTail(file: string, keep: (line: string) => boolean, count: number, width = 400): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(keep).slice(-count).map((l) => l.slice(0, width));
}
