#!/usr/bin/env bash
# Installs a packed release (npm pack's btcfed-X.Y.Z.tgz) into a prefix, without dev dependencies:
#
#   sudo bash install-release.sh [--signer] btcfed-0.2.0.tgz [/opt/btcfed]
#
# --signer: a signer host's install, without the packages only the member's other services load
# (the tarball's signer-omit.txt, found at pack time: libp2p and its transports, LMDB); the signer
# and btcfed run from it, the store, gateway and consensus do not.
#
# Layout (docs/deployment.md):
#   PREFIX/releases/X.Y.Z/   the release, with its node_modules (Node 24 in node_modules/node)
#   PREFIX/current           -> releases/X.Y.Z, switched in one rename once the release runs
#   PREFIX/current/bin/btcfed  the one command; the systemd units run it
# The release is unpacked, not installed under node_modules: Node strips TypeScript types only
# outside node_modules. Its dependencies are exactly the tarball's npm-shrinkwrap.json (the
# project's lock), installed with `npm ci --omit=dev`; the install scripts that run are those the
# release's package.json allows (allowScripts). Upgrading: install the new tarball, restart the
# units. Going back: ln -sfn releases/OLD PREFIX/current.tmp && mv -T PREFIX/current.tmp PREFIX/current.
# Needs npm, and the npm registry or a cache holding the dependencies (--prefer-offline).
set -euo pipefail
signer=no
if [ "${1:-}" = --signer ]; then signer=yes; shift; fi
tarball=${1:?usage: install-release.sh [--signer] TARBALL [PREFIX]}
prefix=${2:-/opt/btcfed}
[ -f "$tarball" ] || { echo "install-release: $tarball: no such file" >&2; exit 1; }
tarball=$(readlink -f "$tarball")
version=$(tar -xzOf "$tarball" package/package.json | sed -n 's/^  "version": "\([^"]*\)",$/\1/p')
[ -n "$version" ] || { echo "install-release: $tarball has no package/package.json version: not a btcfed tarball" >&2; exit 1; }
mkdir -p "$prefix/releases"
prefix=$(cd "$prefix" && pwd)
stage=$prefix/releases/.$version.tmp
rm -rf "$stage"; mkdir -p "$stage"
trap 'rm -rf "$stage"' EXIT
tar -xzf "$tarball" -C "$stage" --strip-components=1 --no-same-owner
[ -f "$stage/npm-shrinkwrap.json" ] || { echo "install-release: $tarball carries no npm-shrinkwrap.json (pack it with npm pack from a checkout)" >&2; exit 1; }
if [ "$signer" = yes ]; then
  [ -f "$stage/signer-omit.txt" ] || { echo "install-release: $tarball carries no signer-omit.txt (pack it with npm pack from a checkout)" >&2; exit 1; }
  # Without those dependencies: npm install keeps the shrinkwrap's versions of everything else.
  while read -r dep; do [ -n "$dep" ] && (cd "$stage" && npm pkg delete "dependencies.$dep"); done < "$stage/signer-omit.txt"
  (cd "$stage" && npm install --omit=dev --prefer-offline --no-audit --no-fund)
  "$stage/node_modules/node/bin/node" "$stage/services/signer/main.ts" --version >/dev/null
else
  (cd "$stage" && npm ci --omit=dev --prefer-offline --no-audit --no-fund)
fi
"$stage/bin/btcfed" --version >/dev/null
rm -rf "$prefix/releases/$version"
mv "$stage" "$prefix/releases/$version"
ln -sfn "releases/$version" "$prefix/current.tmp"
mv -T "$prefix/current.tmp" "$prefix/current"
echo "installed $("$prefix/current/bin/btcfed" --version)$([ "$signer" = yes ] && echo " for a signer host") in $prefix/releases/$version; $prefix/current points to it"
