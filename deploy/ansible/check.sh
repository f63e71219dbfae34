#!/usr/bin/env bash
# The Ansible roles, run for real against this machine (deploy/check.sh calls this):
# ansible-playbook -c local installs the controller (on a fresh Postgres database) and an agent
# with its node from site.yml; the second run must change nothing; a changed agent setting
# restarts the agent inside a maintenance window (audited on and off, the node back out of
# maintenance); the run after that changes nothing again. This machine has no systemd, so the
# roles manage the units with tests/service.sh (it runs each installed unit's ExecStart as
# its User). Installs into /usr/local/bin and /etc/wakufleet, and removes it all afterwards.
#   WAKUFLEET_BINARY=target/release/wakufleet bash deploy/ansible/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=$(realpath "${WAKUFLEET_BINARY:?set WAKUFLEET_BINARY to a wakufleet binary}")
command -v ansible-playbook >/dev/null || { echo "error: ansible-playbook is needed (apt-get install ansible-core)" >&2; exit 1; }
fail() { echo "ansible: FAILED: $*" >&2; exit 1; }
for path in /etc/wakufleet /usr/local/bin/wakufleet /var/lib/wakufleet /var/lib/wakufleet-agent; do
  [ -e "$path" ] && fail "$path exists: this check installs there and would overwrite it"
done

work=$(mktemp -d)
database=wakufleet_ansible_$$
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  bash "$here/tests/service.sh" stop wakufleet-agent 2>/dev/null || true
  bash "$here/tests/service.sh" stop wakufleet-controller 2>/dev/null || true
  rm -rf /etc/wakufleet /usr/local/bin/wakufleet /var/lib/wakufleet /var/lib/wakufleet-agent \
    /etc/systemd/system/wakufleet-controller.service /etc/systemd/system/wakufleet-agent.service \
    /var/log/wakufleet-controller.log /var/log/wakufleet-agent.log "$work"
  userdel wakufleet 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# What an operator keeps on the control node: the binary, keystores, the admin token; the
# passwords would be vault variables.
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
random > "$work/admin-token"
signing_password=$(random) node_password=$(random)
WAKUFLEET_PASSWORD=$signing_password "$binary" key new --light-kdf "$work/boot.json" >/dev/null
WAKUFLEET_PASSWORD=$node_password "$binary" key new --light-kdf "$work/node.json" >/dev/null
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $database" >/dev/null
api_port=$(free_port) dns_port=$(free_port) tcp_port=$(free_port) ws_port=$(free_port)
rest_port=$(free_port) metrics_port=$(free_port) discv5_port=$(free_port)
cat > "$work/inventory.yml" <<YAML
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: /usr/bin/python3
  vars:
    wakufleet_binary_src: $binary
    wakufleet_service_manager: command
    wakufleet_service_command: bash $here/tests/service.sh
    wakufleet_controller_listen: 127.0.0.1:$api_port
    wakufleet_controller_database_url: postgres://postgres@127.0.0.1:5432/$database
    wakufleet_controller_admin_token_file: $work/admin-token
    wakufleet_controller_dns_listen: 127.0.0.1:$dns_port
    wakufleet_controller_zone: fleet.test
    wakufleet_controller_keys:
      - { name: boot, keystore_src: $work/boot.json, password: "$signing_password" }
    wakufleet_controller_trees:
      - name: boot
        domain: boot.fleet.test
        signer: key:boot
        policy: { roles: [boot], cluster-id: 1, max-entries: 8 }
    wakufleet_agent_controller_url: http://127.0.0.1:$api_port
    wakufleet_agent_api_token_file: $work/admin-token
    wakufleet_agent_token_cache: $work/tokens
    wakufleet_agent_label: ansible-agent
    wakufleet_agent_report_interval: ${REPORT_INTERVAL:-10s}
    wakufleet_agent_node_keystore_src: $work/node.json
    wakufleet_agent_node_key_password: "$node_password"
    wakufleet_agent_rest_address: 127.0.0.1:$rest_port
    wakufleet_agent_metrics_address: 127.0.0.1:$metrics_port
    wakufleet_agent_node:
      listen-address: 127.0.0.1
      tcp-port: $tcp_port
      websocket-support: true
      websocket-port: $ws_port
      cluster-id: 1
      shard: [0, 1, 2, 3, 4, 5, 6, 7]
      relay: true
      store: true
      discv5-discovery: true
      discv5-udp-port: $discv5_port
  children:
    wakufleet_controllers: { hosts: { localhost: {} } }
    wakufleet_agents: { hosts: { localhost: {} } }
YAML
mkdir -m 0700 "$work/tokens"

play() { # label; prints the recap's changed= count
  local log=$work/run-$1.log
  ANSIBLE_ROLES_PATH=$here/roles ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    ansible-playbook -i "$work/inventory.yml" "$here/site.yml" > "$log" 2>&1 ||
    { tail -40 "$log" >&2; fail "run $1 failed (log above)"; }
  grep -o 'changed=[0-9]*' "$log" | tail -1 | cut -d= -f2
}
api() { curl -sf -H "Authorization: Bearer $(cat "$work/admin-token")" "http://127.0.0.1:$api_port$1"; }

start=$(date +%s)
changed=$(play first)
[ "$changed" -gt 0 ] || fail "the first run changed nothing"
enrolled() { api /api/v1/nodes | jq -e '[.nodes[] | select(.label == "ansible-agent" and .lastCounter > 0)] | length == 1'; }
for _ in $(seq 1 30); do enrolled >/dev/null 2>&1 && break; sleep 1; done
enrolled >/dev/null || fail "the agent did not enrol and report (see /var/log/wakufleet-agent.log)"
[ "$(stat -c '%U %a' /etc/wakufleet/admin-token)" = "wakufleet 600" ] || fail "admin-token is not wakufleet's, mode 0600"
[ "$(stat -c '%U %a' /etc/wakufleet/node-key.password)" = "wakufleet 600" ] || fail "node-key.password is not wakufleet's, mode 0600"
grep -q "$signing_password" /etc/wakufleet/controller.toml /etc/wakufleet/agent.toml && fail "a password is in a configuration file"
echo "ansible: first run: $changed changed; controller and agent running, the node enrolled and reporting" >&2

changed=$(play second)
[ "$changed" = 0 ] || { grep -B2 'changed:' "$work/run-second.log" >&2; fail "the second run changed $changed (must be 0)"; }
echo "ansible: second run: changed=0" >&2

# A changed setting: the agent restarts inside a maintenance window.
audit_count() { api "/api/v1/audit?limit=500" | jq "[.entries[] | select(.action == \"$1\")] | length"; }
sed -i "s/wakufleet_agent_report_interval: .*/wakufleet_agent_report_interval: 20s/" "$work/inventory.yml"
before_on=$(audit_count node.maintenance.start) before_off=$(audit_count node.maintenance.end)
changed=$(play third)
[ "$changed" -gt 0 ] || fail "a changed setting changed nothing"
grep -q 'report-interval = "20s"' /etc/wakufleet/agent.toml || fail "agent.toml does not have the new setting"
[ "$(audit_count node.maintenance.start)" -gt "$before_on" ] || fail "no maintenance began around the restart"
[ "$(audit_count node.maintenance.end)" -gt "$before_off" ] || fail "the maintenance did not end"
api /api/v1/nodes | jq -e '.nodes[] | select(.label == "ansible-agent") | .maintenance == null' >/dev/null ||
  fail "the node is still in maintenance"
echo "ansible: a changed setting: $changed changed, the agent restarted inside an audited maintenance window" >&2

changed=$(play fourth)
[ "$changed" = 0 ] || fail "the run after the change changed $changed (must be 0)"
echo "ansible: ok in $(( $(date +%s) - start )) s (runs: changed>0, 0, >0 inside maintenance, 0)"
