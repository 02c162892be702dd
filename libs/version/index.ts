// The running build's version and commit: one home for what `--version`, `btcfed_build_info` and
// logs report. The version is package.json's. The commit is recorded at pack time in build.json
// (scripts/prepack.ts; in the release tarball, git-ignored in a checkout); in a git checkout
// without it, `git rev-parse HEAD` is asked once, when first needed. Never throws: without
// build.json and without git (or outside a checkout) the commit is "unknown".

import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** Where the pack step records the commit the tarball was made from. */
export const BUILD_FILE = path.join(import.meta.dirname, 'build.json');
const ROOT = path.resolve(import.meta.dirname, '../..');

export interface BuildInfo {
  /** The full commit hash, or "unknown". */
  commit: string;
  /** True when the checkout had uncommitted changes to tracked files when packed or read. */
  dirty: boolean;
  /** Where the commit came from: the packed build.json, the git checkout, or nowhere. */
  source: 'build.json' | 'git' | 'none';
}

function fromBuildFile(): BuildInfo | undefined {
  try {
    const b = JSON.parse(fs.readFileSync(BUILD_FILE, 'utf8')) as { commit?: unknown; dirty?: unknown };
    if (typeof b.commit === 'string' && /^[0-9a-f]{7,64}$/.test(b.commit)) return { commit: b.commit, dirty: b.dirty === true, source: 'build.json' };
  } catch { /* absent or unreadable: ask git */ }
  return undefined;
}

/** The checkout's commit from git, or undefined when there is no git or no checkout here. */
export function gitCommit(dir: string = ROOT): { commit: string; dirty: boolean } | undefined {
  if (!fs.existsSync(path.join(dir, '.git'))) return undefined;
  try {
    const opts = { cwd: dir, encoding: 'utf8' as const, stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'], timeout: 5000 };
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    if (!/^[0-9a-f]{40,64}$/.test(commit)) return undefined;
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], opts).trim() !== '';
    return { commit, dirty };
  } catch {
    return undefined;
  }
}

let cached: BuildInfo | undefined;

/** The build's commit: read once, lazily (a service that never prints it never runs git). */
export function buildInfo(): BuildInfo {
  cached ??= fromBuildFile() ?? (() => {
    const g = gitCommit();
    return g ? { ...g, source: 'git' as const } : { commit: 'unknown', dirty: false, source: 'none' as const };
  })();
  return cached;
}

/** What `--version` prints: "0.2.0 (commit 1a2b3c4d5e6f)", "-dirty" when built from uncommitted changes. */
export function versionLine(): string {
  const b = buildInfo();
  const commit = b.commit === 'unknown' ? 'unknown' : b.commit.slice(0, 12);
  return `${VERSION} (commit ${commit}${b.dirty ? '-dirty' : ''})`;
}
