#!/usr/bin/env bash
# Builds the wakufleet container image with podman (or $CONTAINER_ENGINE), needing no registry:
# the base is made from Debian's packages with mmdebstrap and imported once.
#   bash deploy/image/build.sh                       # release build; tags :<version> and :latest
#   WAKUFLEET_BINARY=target/debug/wakufleet bash deploy/image/build.sh   # an existing binary
#   BASE=docker.io/library/debian:bookworm-slim bash deploy/image/build.sh   # a registry's base
# Prints the image's name last.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
engine=${CONTAINER_ENGINE:-podman}
image=${IMAGE:-localhost/wakufleet}
base=${BASE:-localhost/wakufleet-base:bookworm}

if [ "$base" = localhost/wakufleet-base:bookworm ] && ! $engine image exists "$base"; then
  command -v mmdebstrap >/dev/null || { echo "error: mmdebstrap is needed to make the base (apt-get install mmdebstrap)" >&2; exit 1; }
  echo "image: making $base from Debian's packages (mmdebstrap)" >&2
  tarball=$(mktemp --suffix=.tar)
  trap 'rm -f "$tarball"' EXIT
  # minbase plus CA certificates (https to the controller, /wss peers, the web PKI); no
  # documentation, manuals or locales.
  mmdebstrap --quiet --variant=minbase --include=ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$tarball"
  $engine import --quiet "$tarball" "$base" >/dev/null
  rm -f "$tarball"
fi

binary=${WAKUFLEET_BINARY:-}
if [ -z "$binary" ]; then
  echo "image: cargo build --release" >&2
  (cd "$root" && cargo build --release --locked --bin wakufleet)
  binary=$root/target/release/wakufleet
fi
[ -x "$binary" ] || { echo "error: $binary: no wakufleet binary there" >&2; exit 1; }
version=$("$binary" --version | awk '{print $2}')
revision=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then revision="$revision-dirty"; fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/wakufleet"
# Smaller image: the release profile keeps no debug info, but a debug binary does.
strip "$context/wakufleet" 2>/dev/null || true
# HEALTHCHECK is a Docker-format instruction; OCI images drop it.
$engine build --quiet --format docker \
  --build-arg BASE="$base" --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -f "$root/deploy/image/Containerfile" -t "$image:$version" -t "$image:latest" "$context" >/dev/null
# The binary must run in the base: its libraries are there, it starts as the unprivileged user.
$engine run --rm "$image:$version" --version >/dev/null
echo "$image:$version"
