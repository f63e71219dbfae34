#!/usr/bin/env bash
# The compose stack, run for real (deploy/check.sh calls this): in a copy of deploy/, init.sh
# and up.sh bring up Postgres, the controller, three agents, Prometheus and Alertmanager;
# then: the tree is served over DNS to the host with every node, the dashboard, Prometheus
# (every target up, the rules loaded) and Alertmanager answer; stopping one agent's container
# makes the controller mark it critical and drop it from the tree; `down` then `up` keeps the
# data (same nodes, no new enrolment, the tree's seq goes on). Cleans up after itself.
#   WAKUFLEET_IMAGE=localhost/wakufleet:latest bash deploy/compose/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-podman}
compose=${COMPOSE:-podman-compose}
image=${WAKUFLEET_IMAGE:-localhost/wakufleet:latest}

work=$(mktemp -d)
cp -r "$here/.." "$work/deploy"
rm -rf "$work/deploy/compose/.env" "$work/deploy/compose/secrets"
cd "$work/deploy/compose"
cleanup() {
  $compose down -v >/dev/null 2>&1 || true
  cd / && rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "compose: FAILED: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for port in 8080 5433 9090 9093 60001 60002 60003 8001 8002 8003 8646 8647 8648 8009 8010 8011; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "port $port is in use (the stack's default ports must be free)"; fi
done

# The operator's defaults (DNS on 0.0.0.0:53, served by the image's unprivileged user) where
# port 53 is free here; else DNS on a free loopback port. The stand-in images when given.
cp .env.example .env
sed -i "s#^WAKUFLEET_IMAGE=.*#WAKUFLEET_IMAGE=$image#" .env
if ss -Hlnu 'sport = :53' | grep -q . || ss -Hlnt 'sport = :53' | grep -q .; then
  dns_port=$(free_port)
  sed -i "s/^DNS_ADDRESS=.*/DNS_ADDRESS=127.0.0.1/; s/^DNS_PORT=.*/DNS_PORT=$dns_port/" .env
else
  dns_port=53
fi
for key in POSTGRES_IMAGE PROMETHEUS_IMAGE ALERTMANAGER_IMAGE; do
  value=${!key:-}
  [ -n "$value" ] && sed -i "s#^$key=.*#$key=$value#" .env
done

bash init.sh >/dev/null 2>&1 || bash init.sh
tree_url=$(cat secrets/tree-url)
token=$(cat secrets/admin-token)
api() { curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:8080$1"; }
wakufleet() { $engine run --rm --no-healthcheck --network host "$image" "$@"; }
records() { wakufleet tree resolve --server "127.0.0.1:$dns_port" "$tree_url" 2>/dev/null | grep -c '^enr:' || true; }
wait_until() { # what, seconds, command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "$what: not within ${seconds}s"
}
passing() { [ "$(api /api/v1/nodes | jq '[.nodes[] | select(.health == "passing")] | length')" = "$1" ]; }
tree_has() { [ "$(records)" = "$1" ]; }

start=$(date +%s)
bash up.sh
wait_until "three passing nodes" 120 passing 3
wait_until "a tree of three records over DNS at 127.0.0.1:$dns_port" 60 tree_has 3
echo "compose: up in $(( $(date +%s) - start )) s; three nodes passing; boot.fleet.example.org serves 3 records" >&2

# The dashboard (login: admin and the admin token), Prometheus and Alertmanager answer.
# The page is read whole before it is searched: `curl | grep -q` fails under pipefail once the
# page outgrows a pipe's buffer (grep stops at the first match, curl's next write fails).
page=$(curl -sf -u "admin:$token" http://127.0.0.1:8080/dashboard) || fail "the dashboard refused the admin's login"
grep -q compose-agent-1 <<<"$page" || fail "the dashboard does not list compose-agent-1"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/dashboard)" = 401 ] || fail "the dashboard answers without a login"
targets_up() {
  [ "$(curl -sf http://127.0.0.1:9090/api/v1/targets | jq '[.data.activeTargets[] | select(.health == "up")] | length')" = 4 ]
}
wait_until "Prometheus scraping the controller and three agents" 60 targets_up
curl -sf http://127.0.0.1:9090/api/v1/rules | jq -e '[.data.groups[].rules[]] | length > 5' >/dev/null || fail "Prometheus has not loaded the rules"
curl -sf http://127.0.0.1:9093/-/ready >/dev/null || fail "Alertmanager is not ready"
curl -sf http://127.0.0.1:9090/api/v1/alertmanagers | jq -e '.data.activeAlertmanagers | length == 1' >/dev/null || fail "Prometheus has no Alertmanager"
echo "compose: dashboard, Prometheus (4 targets up, rules loaded) and Alertmanager answer" >&2

# One agent's container stops: the controller marks its node critical and the tree drops it.
tree_seq() { api /api/v1/trees | jq '[.trees[] | select(.tree.name == "boot") | .versions[].seq] | max'; }
$compose stop agent-2 >/dev/null 2>&1
health_of() { api /api/v1/nodes | jq -r --arg want "$1" '.nodes[] | select(.label == $want) | .health'; }
is_critical() { [ "$(health_of compose-agent-2)" = critical ]; }
wait_until "compose-agent-2 critical after its container stopped" 60 is_critical
wait_until "the tree without compose-agent-2" 60 tree_has 2
echo "compose: agent-2 stopped: its node critical, the tree down to 2 records" >&2

# down and up again: the data stays (nodes, enrolments, keys, the tree's history).
nodes_before=$(api /api/v1/nodes | jq -c '[.nodes[] | .nodeId] | sort')
seq_before=$(tree_seq)
$compose down >/dev/null 2>&1
bash up.sh
wait_until "three passing nodes after down and up" 120 passing 3
wait_until "a tree of three records after down and up" 60 tree_has 3
nodes_after=$(api /api/v1/nodes | jq -c '[.nodes[] | .nodeId] | sort')
[ "$nodes_before" = "$nodes_after" ] || fail "the nodes changed across down/up: $nodes_before → $nodes_after"
seq_after=$(tree_seq)
[ "$seq_after" -gt "$seq_before" ] || fail "the tree's seq went from $seq_before to $seq_after"
echo "compose: down and up kept the data: the same 3 nodes, tree seq $seq_before → $seq_after" >&2
echo "compose: ok in $(( $(date +%s) - start )) s"
