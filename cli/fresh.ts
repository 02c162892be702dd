// The one-time permission for a signer's first start: `btcfed init` leaves a marker in each
// signer dir it makes, and `btcfed devnet` passes the signer `--init` only while that marker is
// there, removing it once the signer has created its safety state. A signer whose state file
// went missing later gets no `--init`: it refuses to start with its own clear error instead of
// silently starting again from zero marks (which could sign a second vote for a view it voted in).
// Must never be written by anything but the run that made the signer's key.

import fs from 'node:fs';
import path from 'node:path';

export const FRESH_MARKER = 'init-pending';

const TEXT = 'Made by btcfed init: the first start of this signer may create its safety state (--init).\n'
  + 'btcfed devnet removes this file once the signer is up; never create it by hand.\n';

export async function markFreshSigner(signerDir: string): Promise<void> {
  await fs.promises.writeFile(path.join(signerDir, FRESH_MARKER), TEXT, { mode: 0o600, flag: 'wx' });
}

export function isFreshSigner(signerDir: string): boolean {
  return fs.existsSync(path.join(signerDir, FRESH_MARKER));
}

/** After the signer's first successful start: the permission is used up (durably). */
export async function consumeFreshMarker(signerDir: string): Promise<void> {
  await fs.promises.rm(path.join(signerDir, FRESH_MARKER), { force: true });
  const dir = await fs.promises.open(signerDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
