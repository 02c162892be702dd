// npm's prepack step (npm pack): what the tarball carries besides the sources —
//  - libs/version/build.json, the commit it is made from, so an installed release answers
//    `--version` with its commit without git (outside a checkout: "unknown", and it says so);
//  - npm-shrinkwrap.json, a copy of package-lock.json: the lock is never packed, and the release
//    must install the same dependency tree the tests ran on (`npm ci --omit=dev` in
//    scripts/install-release.sh).
// Both are git-ignored; scripts/postpack.ts removes them again.

import fs from 'node:fs';
import path from 'node:path';
import { BUILD_FILE, gitCommit } from '#libs/version/index.ts';

const root = path.resolve(import.meta.dirname, '..');
const g = gitCommit();
const info = { commit: g?.commit ?? 'unknown', dirty: g?.dirty ?? false, packedAt: new Date().toISOString() };
fs.writeFileSync(BUILD_FILE, `${JSON.stringify(info, null, 2)}\n`);
fs.copyFileSync(path.join(root, 'package-lock.json'), path.join(root, 'npm-shrinkwrap.json'));
if (!g) process.stderr.write('prepack: no git checkout here; the tarball records commit "unknown"\n');
else if (g.dirty) process.stderr.write(`prepack: packing ${g.commit} with uncommitted changes (recorded as dirty)\n`);
