// npm's prepack step (npm pack): what the tarball carries besides the sources —
//  - libs/version/build.json, the commit it is made from, so an installed release answers
//    `--version` with its commit without git (outside a checkout: "unknown", and it says so);
//  - npm-shrinkwrap.json, a copy of package-lock.json: the lock is never packed, and the release
//    must install the same dependency tree the tests ran on (`npm ci --omit=dev` in
//    scripts/install-release.sh);
//  - signer-omit.txt, the dependencies a signer host does without (install-release.sh --signer):
//    those neither the signer nor btcfed loads, found by loading both (the signer's every static
//    import, as `--version` does; every module a btcfed command may load, loadEveryCommand; what
//    the libraries load on first use: reflection, proto-loader, libp2p's key and peer-id modules,
//    pino-pretty) with a module-resolution hook that notes each package.
// All three are git-ignored; scripts/postpack.ts removes them again.

import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BUILD_FILE, gitCommit } from '#libs/version/index.ts';

const root = path.resolve(import.meta.dirname, '..');
const g = gitCommit();
const info = { commit: g?.commit ?? 'unknown', dirty: g?.dirty ?? false, packedAt: new Date().toISOString() };
fs.writeFileSync(BUILD_FILE, `${JSON.stringify(info, null, 2)}\n`);
fs.copyFileSync(path.join(root, 'package-lock.json'), path.join(root, 'npm-shrinkwrap.json'));

// The packages a process loads: each resolved URL under node_modules, by package name, on stderr.
const HOOK = `import { registerHooks } from 'node:module';
const seen = new Set();
registerHooks({ resolve(spec, ctx, next) {
  const r = next(spec, ctx);
  const m = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url);
  if (m && !seen.has(m[1])) { seen.add(m[1]); process.stderr.write('loaded-package ' + m[1] + '\\n'); }
  return r;
} });`;
const loaded = new Set<string>();
const cli = `import(${JSON.stringify(path.join(root, 'cli/main.ts'))}).then((m) => m.loadEveryCommand())`;
// What every gRPC server loads on its first reflection call (libs/rpc/reflection.ts, proto.ts), the
// signer's too; and what the libraries load on first use rather than at import: libp2p's key,
// peer-id and multiaddr modules for an uncommon config value (libs/config/values.ts; a key made by
// identity.ts uses the same), pino-pretty for text logs (libs/log).
const lib = (file: string) => JSON.stringify(path.join(root, file));
const reflection = `import(${lib('libs/rpc/reflection.ts')}).then((m) => m.loadReflectionLibrary())
  .then(() => import(${lib('libs/rpc/proto.ts')})).then((m) => { m.loadProtoLoader(); return import(${lib('libs/config/values.ts')}); })
  .then((m) => { m.loadLibp2pModules(); return import(${lib('libs/log/index.ts')}); }).then((m) => { m.loadTextLogging(); })`;
for (const [entry, args] of [['services/signer/main.ts', [path.join(root, 'services/signer/main.ts'), '--version']],
  ['cli/main.ts', ['--input-type=module', '-e', cli]], ['what the libraries load on first use', ['--input-type=module', '-e', reflection]]] as const) {
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(HOOK)}`, ...args],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  if (r.status !== 0) throw new Error(`prepack: loading ${entry} failed: ${r.stderr}`);
  for (const m of r.stderr.matchAll(/^loaded-package (\S+)$/gm)) loaded.add(m[1]!);
}
const deps = Object.keys((JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
// node is the runtime itself; never omitted.
const omit = deps.filter((d) => d !== 'node' && !loaded.has(d));
fs.writeFileSync(path.join(root, 'signer-omit.txt'), omit.map((d) => `${d}\n`).join(''));

if (!g) process.stderr.write('prepack: no git checkout here; the tarball records commit "unknown"\n');
else if (g.dirty) process.stderr.write(`prepack: packing ${g.commit} with uncommitted changes (recorded as dirty)\n`);
process.stderr.write(`prepack: a signer host does without ${omit.join(', ')}\n`);
