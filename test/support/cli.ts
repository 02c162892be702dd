// The btcfed command line as an operator runs it in tests: the real binary in a working dir,
// its exit code, stdout and stderr; `ok` expects success, `refused` exit 1 with a message.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './process.ts';

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** Commands run in `cwd()` (read at each run: a test's dir is often made in `before`). */
export function btcfedIn(cwd: () => string) {
  const btcfed = (args: readonly string[]): Promise<CliRun> => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'cli/main.ts'), ...args], { cwd: cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await btcfed(args);
    assert.equal(r.code, 0, `btcfed ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const refused = async (args: readonly string[], pattern: RegExp): Promise<string> => {
    const r = await btcfed(args);
    assert.equal(r.code, 1, `btcfed ${args.join(' ')} should have been refused; stdout: ${r.stdout}`);
    assert.match(r.stderr, pattern);
    return r.stderr;
  };
  return { btcfed, ok, refused };
}
