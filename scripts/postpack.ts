// npm's postpack step: removes what scripts/prepack.ts added. A stale build.json would make the
// checkout report an older commit; a stale npm-shrinkwrap.json would take over from
// package-lock.json in the next npm install here; signer-omit.txt belongs to the tarball only.

import fs from 'node:fs';
import path from 'node:path';
import { BUILD_FILE } from '#libs/version/index.ts';

fs.rmSync(BUILD_FILE, { force: true });
fs.rmSync(path.resolve(import.meta.dirname, '../npm-shrinkwrap.json'), { force: true });
fs.rmSync(path.resolve(import.meta.dirname, '../signer-omit.txt'), { force: true });
