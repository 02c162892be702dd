// Test support: a SoftHSM2 token directory of its own (its own softhsm2.conf, never the system's),
// so tests never share a token. SOFTHSM2_CONF in `env` points a child process (or this one) at it.
// Needs softhsm2-util (scripts/ensure-tools.sh installs the softhsm2 package).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const TEST_PIN = '246810';

export interface SoftHsm {
  /** The directory holding softhsm2.conf and tokens/. */
  dir: string;
  confFile: string;
  env: { SOFTHSM2_CONF: string };
  /** Initialises a new token labelled `label` with TEST_PIN (or `pin`). */
  addToken(label: string, pin?: string): void;
  /** Writes a 0600 PIN file at `file`. */
  writePin(file: string, pin?: string): Promise<void>;
  /** Moves the token directory away (the token is gone) or back. */
  pull(): Promise<void>;
  plugBack(): Promise<void>;
}

export async function makeSoftHsm(dir: string): Promise<SoftHsm> {
  const tokens = path.join(dir, 'tokens');
  await fs.mkdir(tokens, { recursive: true, mode: 0o700 });
  const confFile = path.join(dir, 'softhsm2.conf');
  await fs.writeFile(confFile, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env = { SOFTHSM2_CONF: confFile };
  return {
    dir, confFile, env,
    addToken(label, pin = TEST_PIN) {
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `${pin}-so`], { env: { ...process.env, ...env }, stdio: 'pipe' });
    },
    async writePin(file, pin = TEST_PIN) {
      await fs.writeFile(file, `${pin}\n`, { mode: 0o600 });
      await fs.chmod(file, 0o600);
    },
    async pull() {
      await fs.rename(tokens, `${tokens}.pulled`);
    },
    async plugBack() {
      await fs.rename(`${tokens}.pulled`, tokens);
    },
  };
}
