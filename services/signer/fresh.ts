// The one-time permission for a signer's first start: `btcfed member init` (and `btcfed init`)
// leave a marker in each signer dir they make with a new key, and a signer run with
// `--init-if-pending` (the systemd unit, `btcfed devnet`) creates its safety state only while that
// marker is there, removing it once the state exists. A signer whose state file went missing later
// finds no marker: it refuses to start with its own clear error instead of silently starting again
// from zero marks (which could sign a second vote for a view it voted in); and even with a marker,
// --init is refused when the journal shows the key has signed (open.ts).
// Must never be written by anything but the run that made the signer's key.

import fs from 'node:fs';
import path from 'node:path';

export const FRESH_MARKER = 'init-pending';

const TEXT = 'Made with this signer\'s key by btcfed: its first start may create its safety state (--init).\n'
  + 'The signer removes this file once it has; never create it by hand.\n';

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
