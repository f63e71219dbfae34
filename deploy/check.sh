#!/usr/bin/env bash
# Every deployment path, run for real on this machine, and one summary line last:
#   1. the image (deploy/image/build.sh), and stand-ins for Postgres, Prometheus and
#      Alertmanager made from Debian's packages (no registry is reachable here);
#   2. the compose stack (deploy/compose/check.sh);
#   3. the Kubernetes manifests: schema and `podman kube play` (deploy/kubernetes/check.sh);
#   4. the Ansible roles, run four times against this machine (deploy/ansible/check.sh).
# Installs what it needs (podman, runc, catatonit, mmdebstrap, ansible-core, kubectl,
# podman-compose, kubernetes-validate). Run as root (it installs packages and, for Ansible,
# into /usr/local/bin and /etc/wakufleet, removed afterwards).
#   bash deploy/check.sh                                   # builds the release binary
#   WAKUFLEET_BINARY=target/debug/wakufleet bash deploy/check.sh   # an existing binary
#   bash deploy/check.sh compose ansible                   # some parts (the image is built)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(compose kubernetes ansible)

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null || need+=(catatonit)
command -v newuidmap >/dev/null || need+=(uidmap)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v ansible-playbook >/dev/null || need+=(ansible-core)
command -v kubectl >/dev/null || need+=(kubernetes-client)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v jq >/dev/null || need+=(jq)
command -v curl >/dev/null || need+=(curl)
command -v pip >/dev/null || command -v pip3 >/dev/null || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "deploy: installing ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
pip=$(command -v pip || command -v pip3)
python3 -c 'import yaml' 2>/dev/null || $pip install -q pyyaml
command -v podman-compose >/dev/null || $pip install -q podman-compose==1.6.0
command -v kubernetes-validate >/dev/null || $pip install -q kubernetes-validate==1.37.0

# podman on machines like this one (no systemd, hybrid cgroups, no raising rlimits).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}

results=()
record() { results+=("$1"); }
run_part() { # name, command…
  local name=$1 began; began=$(date +%s); shift
  if "$@"; then
    record "$name ok ($(( $(date +%s) - began )) s)"
  else
    record "$name FAILED"
    failed=1
  fi
}
failed=0

began=$(date +%s)
image=$(bash deploy/image/build.sh) || { echo "deploy: FAILED: the image did not build" >&2; echo "deploy: image FAILED"; exit 1; }
size=$(podman image inspect "$image" --format '{{.Size}}' | awk '{printf "%d MB", $1 / 1000000}')
user=$(podman image inspect "$image" --format '{{.Config.User}}')
[ "$user" = "10001:10001" ] || { echo "deploy: FAILED: the image runs as '$user', not 10001:10001" >&2; exit 1; }
record "image $image ok ($size, $(( $(date +%s) - began )) s)"
eval "$(bash deploy/image/services/build.sh)"
export WAKUFLEET_IMAGE=$image POSTGRES_IMAGE PROMETHEUS_IMAGE ALERTMANAGER_IMAGE

binary=${WAKUFLEET_BINARY:-target/release/wakufleet}
for part in "${parts[@]}"; do
  case $part in
    compose) run_part compose bash deploy/compose/check.sh ;;
    kubernetes) run_part kubernetes bash deploy/kubernetes/check.sh ;;
    ansible) run_part ansible env WAKUFLEET_BINARY="$binary" bash deploy/ansible/check.sh ;;
    *) echo "deploy: unknown part $part (compose, kubernetes, ansible)" >&2; exit 2 ;;
  esac
done

summary=$(IFS=';'; echo "${results[*]}" | sed 's/;/, /g')
if [ "$failed" = 0 ]; then
  echo "deploy: all passed in $(( $(date +%s) - start )) s: $summary"
else
  echo "deploy: FAILED in $(( $(date +%s) - start )) s: $summary"
  exit 1
fi
