#!/usr/bin/env bash
# The Kubernetes manifests (deploy/check.sh calls this):
# 1. kustomize renders the base and both overlays; every object passes the Kubernetes 1.32
#    schema, strictly (unknown fields are errors);
# 2. `podman kube play` runs the sim overlay's pods on this host (play.py does what a cluster
#    would: one loopback address per pod, StatefulSet names, downward API): Postgres, the
#    controller's two replicas (one holds the publisher lease), three agents enrolled with
#    tokens from a Secret, each with its node key from its own Secret; the tree is served with
#    all three nodes by both replicas; three plain nodes that are given only the tree's URL
#    find peers through it. Cleans up after itself.
#   WAKUFLEET_IMAGE=localhost/wakufleet:latest POSTGRES_IMAGE=… bash deploy/kubernetes/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-podman}
image=${WAKUFLEET_IMAGE:-localhost/wakufleet:latest}
postgres_image=${POSTGRES_IMAGE:-docker.io/library/postgres:15}
fail() { echo "kubernetes: FAILED: $*" >&2; exit 1; }
for tool in kubectl kubernetes-validate jq curl dig; do
  command -v "$tool" >/dev/null || fail "$tool is needed"
done
work=$(mktemp -d)
chmod 0755 "$work"   # the image's user writes keys and tokens into it
start=$(date +%s)

# 1. Render and validate.
for target in base overlays/production overlays/sim; do
  out="$work/$(basename "$target").yaml"
  kubectl kustomize "$here/$target" > "$out" 2>/dev/null || fail "kustomize $target"
  kubernetes-validate --strict --quiet -k 1.32.0 "$out" || fail "$target does not pass the schema"
done
objects=$(grep -c '^kind:' "$work/sim.yaml")
echo "kubernetes: base, production and sim render; $objects objects pass the 1.32 schema (strict)" >&2

# 2. Play.
rendered=$work/sim.yaml
scale=(--replicas wakufleet-sim-node=3)
declare -A address
while read -r pod ip; do address[$pod]=$ip; done < <(python3 "$here/play.py" addresses "$rendered" "${scale[@]}")
for pod in "${!address[@]}"; do
  ip=${address[$pod]}
  for port in 5432 8080 5353 60000 8000 8645 8008; do
    if (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null; then fail "$ip:$port is in use"; fi
  done
done
pods=()
cleanup() {
  if [ -n "${KEEP:-}" ]; then echo "kept: $work (podman kube down $work/play-*.yaml)" >&2; return; fi
  for pod in "${!address[@]}"; do   # containers with their anonymous volumes
    $engine ps -aq --filter "pod=$pod" | xargs -r $engine rm -f -v >/dev/null 2>&1 || true
  done
  for file in "$work"/play-*.yaml; do [ -e "$file" ] && $engine kube down "$file" >/dev/null 2>&1; done
  for pod in "${!address[@]}"; do
    $engine volume rm -f "data-$pod" >/dev/null 2>&1 || true
  done
  # podman keeps each ConfigMap and Secret volume under its name: a later play must not find
  # this run's contents.
  for name in wakufleet-agent wakufleet-controller wakufleet-sim \
    $(ls "$work/podman-secrets" 2>/dev/null | sed 's/\.yaml$//'); do
    $engine volume rm -f "$name" >/dev/null 2>&1 || true
  done
  for secret in $(ls "$work/podman-secrets" 2>/dev/null); do $engine secret rm "${secret%.yaml}" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wakufleet() { $engine run --rm --no-healthcheck --network host -v "$work:/work" "$image" "$@"; }

# The Secrets an operator creates before `kubectl apply` (README.md, "Kubernetes").
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
b64() { base64 -w0; }
mkdir -m 0777 "$work/keys"
for key in signing-key wakufleet-agent-0 wakufleet-agent-1 wakufleet-agent-2; do
  random > "$work/keys/$key.password"
  chmod 0644 "$work/keys/$key.password"
  wakufleet key new "/work/keys/$key.json" --password-file "/work/keys/$key.password" > "$work/keys/$key.show"
done
postgres_password=$(random) admin_token=$(random)
database_url="postgres://wakufleet:$postgres_password@${address[wakufleet-postgres-0]}:5432/wakufleet"
{
  printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: wakufleet-postgres}\ndata:\n  password: %s\n---\n' "$(printf %s "$postgres_password" | b64)"
  printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: wakufleet-database}\ndata:\n  url: %s\n---\n' "$(printf %s "$database_url" | b64)"
  printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: wakufleet-controller}\ndata:\n  admin-token: %s\n  signing-key.json: %s\n  signing-key.password: %s\n' \
    "$(printf %s "$admin_token" | b64)" "$(b64 < "$work/keys/signing-key.json")" "$(b64 < "$work/keys/signing-key.password")"
  for n in 0 1 2; do
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: wakufleet-agent-%s-key}\ndata:\n  node-key.json: %s\n  node-key.password: %s\n' \
      "$n" "$(b64 < "$work/keys/wakufleet-agent-$n.json")" "$(b64 < "$work/keys/wakufleet-agent-$n.password")"
  done
} > "$work/secrets.yaml"
kubernetes-validate --strict --quiet -k 1.32.0 "$work/secrets.yaml" || fail "the Secrets do not pass the schema"
create_secrets() {
  for name in $(python3 "$here/play.py" podman-secrets "$1" "$work/podman-secrets"); do
    $engine secret rm "$name" >/dev/null 2>&1 || true
    $engine secret create "$name" "$work/podman-secrets/$name.yaml" >/dev/null
  done
}
create_secrets "$work/secrets.yaml"

play() { # name, play.py options…
  local name=$1; shift
  python3 "$here/play.py" pods "$rendered" --secrets "$work/secrets.yaml" "${scale[@]}" \
    --image "docker.io/library/postgres=$postgres_image" --image "localhost/wakufleet=$image" "$@" 2>/dev/null > "$work/play-$name.yaml"
  $engine kube play "$work/play-$name.yaml" >/dev/null 2>"$work/play-$name.err" ||
    { grep -v "systemd connection" "$work/play-$name.err" >&2; fail "podman kube play $name"; }
}
wait_until() { # what, seconds, command…
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "$what: not within ${seconds}s"
}

play postgres --select wakufleet-postgres
wait_until "Postgres" 60 $engine exec wakufleet-postgres-0-postgres pg_isready -h "${address[wakufleet-postgres-0]}" -U wakufleet
play controller --select wakufleet-controller
c0=${address[wakufleet-controller-0]} c1=${address[wakufleet-controller-1]}
wait_until "controller-0's /health" 60 curl -sf "http://$c0:8080/health"
wait_until "controller-1's /health" 60 curl -sf "http://$c1:8080/health"
lease_holders() {
  local total=0 held
  for ip in "$c0" "$c1"; do
    held=$(curl -sf "http://$ip:8080/metrics" | awk '$1 == "wakufleet_publisher_lease_held" {print $2}')
    total=$(( total + ${held:-0} ))
  done
  echo "$total"
}
one_publisher() { [ "$(lease_holders)" = 1 ]; }
wait_until "exactly one controller holding the publisher lease" 30 one_publisher

# Enrolment tokens for the three pods, as a Secret (keys: the pods' names).
mkdir -m 0777 "$work/tokens"
printf %s "$admin_token" > "$work/tokens/admin" && chmod 0644 "$work/tokens/admin"
for n in 0 1 2; do
  wakufleet token create --controller "http://$c0:8080" --token-file /work/tokens/admin \
    --label "wakufleet-agent-$n" --roles boot --out "/work/tokens/wakufleet-agent-$n" 2>/dev/null
done
{
  printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: wakufleet-agent-tokens}\ndata:\n'
  for n in 0 1 2; do printf '  wakufleet-agent-%s: %s\n' "$n" "$(b64 < "$work/tokens/wakufleet-agent-$n")"; done
} > "$work/tokens.yaml"
create_secrets "$work/tokens.yaml"
# What the wakufleet-controller Service would route to.
play agents --select wakufleet-agent --env "CONTROLLER_URL=http://$c0:8080"

api() { curl -sf -H "Authorization: Bearer $admin_token" "http://$c0:8080$1"; }
passing() { [ "$(api /api/v1/nodes | jq '[.nodes[] | select(.health == "passing")] | length')" = 3 ]; }
wait_until "three passing nodes" 120 passing
key=$(awk '/public key:/ {print $3}' "$work/keys/signing-key.show")
tree_url="enrtree://$key@boot.fleet.example.org"
records_at() { wakufleet tree resolve --server "$1:5353" "$tree_url" 2>/dev/null | grep -c '^enr:' || true; }
serves_three() { [ "$(records_at "$1")" = 3 ]; }
wait_until "controller-0 serving a tree of 3" 60 serves_three "$c0"
wait_until "controller-1 serving a tree of 3" 60 serves_three "$c1"
echo "kubernetes: played: Postgres, 2 controllers (1 lease holder), 3 agents passing; both replicas serve the tree of 3" >&2

# Plain nodes given only the tree: they find the fleet through DNS (then discv5, peer exchange).
play sim --select wakufleet-sim-node --env "TREE_URL=$tree_url" --env "DNS_SERVER=$c1:5353"
connected() {
  local n
  for n in 0 1 2; do
    curl -sf "http://${address[wakufleet-sim-node-$n]}:8645/health" | jq -e '.connectionStatus != "Disconnected"' >/dev/null || return 1
  done
}
wait_until "three sim nodes connected through the tree" 60 connected
echo "kubernetes: 3 sim nodes, given only the tree's URL, connected to the fleet" >&2
echo "kubernetes: ok in $(( $(date +%s) - start )) s ($objects objects schema-checked; played 9 pods)"
