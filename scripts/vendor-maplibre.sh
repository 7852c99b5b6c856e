#!/bin/sh
# Vendor MapLibre GL JS from npm into gridsvc/static/maplibre (no CDN: parks run offline).
#   scripts/vendor-maplibre.sh 6.17.0
#
# From v6 MapLibre ships ES modules only: maplibre-gl.mjs, which starts its
# web workers from maplibre-gl-worker.mjs found beside it (import.meta.url),
# so both files are kept, with the stylesheet and the licence. npm's tarball
# is unpacked in a temporary directory: no node_modules is left behind.
set -eu

version="${1:?usage: $0 VERSION (e.g. 6.17.0)}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/gridsvc/static/maplibre"
files="maplibre-gl.mjs maplibre-gl-worker.mjs maplibre-gl.css"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "maplibre-gl@$version" >/dev/null)
tar -xzf "$work"/maplibre-gl-*.tgz -C "$work"
pkg="$work/package"

rm -rf "$dest"
mkdir -p "$dest"
for f in $files; do cp "$pkg/dist/$f" "$dest/$f"; done
cp "$pkg/LICENSE.txt" "$dest/LICENSE.txt"
{
    echo "maplibre-gl $version"
    echo "from npm (scripts/vendor-maplibre.sh $version): $files LICENSE.txt"
} >"$dest/VERSION"
echo "vendored maplibre-gl $version into ${dest#"$root"/}"
