#!/usr/bin/env bash
# Starts the stack in dependency order and waits at each step: Postgres ready, the controller's
# /health, the enrolment tokens written, then the agents and the monitoring. `docker compose up
# -d` does the same from compose.yaml's depends_on conditions; podman 4.3 ignores those
# conditions (podman-compose says so), hence this script.
#   bash up.sh                      # everything but Grafana when GRAFANA_IMAGE cannot be had
#   COMPOSE="docker compose" bash up.sh
set -euo pipefail
cd "$(dirname "$0")"
compose=${COMPOSE:-podman-compose}
engine=${CONTAINER_ENGINE:-podman}
[ -f .env ] && [ -d secrets ] || { echo "error: run init.sh first (.env and ./secrets)" >&2; exit 1; }
set -a; . ./.env; set +a
project=${COMPOSE_PROJECT_NAME:-wakufleet}
container() { # podman-compose names containers project_service_1, docker compose project-service-1
  case $compose in podman-compose*) echo "${project}_$1_1" ;; *) echo "${project}-$1-1" ;; esac
}

wait_for() { # what, seconds, command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "error: $what not ready after ${seconds}s" >&2
  return 1
}
up() { $compose up -d --no-deps "$@" >/dev/null 2>&1 || $compose up -d --no-deps "$@"; }

up postgres
wait_for "postgres on 127.0.0.1:$POSTGRES_PORT" 60 \
  $engine exec "$(container postgres)" pg_isready -h 127.0.0.1 -p "$POSTGRES_PORT" -U wakufleet
up controller
wait_for "the controller's /health" 60 \
  $engine run --rm --no-healthcheck --network host "$WAKUFLEET_IMAGE" health --url "http://127.0.0.1:$CONTROLLER_PORT/health"
up enrol
wait_for "enrolment tokens" 120 sh -c "[ \"\$($engine inspect -f '{{.State.Status}} {{.State.ExitCode}}' $(container enrol))\" = 'exited 0' ]"
services="agent-1 agent-2 agent-3 prometheus alertmanager"
if $engine image exists "$GRAFANA_IMAGE" || $engine pull -q "$GRAFANA_IMAGE" >/dev/null 2>&1; then
  services="$services grafana"
else
  echo "grafana: $GRAFANA_IMAGE cannot be had here; the stack runs without it" >&2
fi
# shellcheck disable=SC2086
up $services
echo "up: $($engine ps --filter label=io.podman.compose.project=$project --format '{{.Names}}' 2>/dev/null | wc -l) containers running" >&2
