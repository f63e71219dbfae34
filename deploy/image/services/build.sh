#!/usr/bin/env bash
# Stand-ins for the compose stack's third-party images, made from Debian's packages, for
# machines that reach no container registry (these test machines). Elsewhere the stack uses
# the official images (.env: POSTGRES_IMAGE, PROMETHEUS_IMAGE, ALERTMANAGER_IMAGE).
#   bash deploy/image/services/build.sh     # prints the KEY=image lines for .env
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-podman}
base=localhost/wakufleet-services-base:bookworm

if ! $engine image exists "$base"; then
  echo "images: making $base from Debian's packages (mmdebstrap)" >&2
  tarball=$(mktemp --suffix=.tar)
  trap 'rm -f "$tarball"' EXIT
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,postgresql-15,prometheus,prometheus-alertmanager \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$tarball"
  $engine import --quiet "$tarball" "$base" >/dev/null
fi
for service in postgres prometheus alertmanager; do
  $engine build --quiet --format docker --build-arg BASE="$base" \
    -f "$here/Containerfile.$service" -t "localhost/wakufleet-$service:bookworm" "$here" >/dev/null
done
echo "POSTGRES_IMAGE=localhost/wakufleet-postgres:bookworm"
echo "PROMETHEUS_IMAGE=localhost/wakufleet-prometheus:bookworm"
echo "ALERTMANAGER_IMAGE=localhost/wakufleet-alertmanager:bookworm"
