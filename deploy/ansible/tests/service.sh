#!/usr/bin/env bash
# A stand-in for systemctl on hosts without systemd (these test machines), for the roles'
# `wakufleet_service_manager: command`:  service.sh start|restart|stop UNIT
# It reads the installed unit (/etc/systemd/system/UNIT.service) and does what systemd would:
# StateDirectory= made and owned by User=, Environment= and EnvironmentFile= set,
# ExecStartPre= then ExecStart= run as User=. Output to /var/log/UNIT.log, pid in /run/UNIT.pid.
# `start` prints "running" when the unit already runs (the role's changed_when reads it).
set -euo pipefail
action=$1 unit=$2
file=/etc/systemd/system/$unit.service
pidfile=/run/$unit.pid
[ -f "$file" ] || { echo "error: $file: no such unit" >&2; exit 1; }
value() { sed -n "s/^$1=//p" "$file"; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
stop() {
  running || return 0
  local pid; pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
start() {
  if running; then echo "running"; return 0; fi
  local user state envfile
  user=$(value User)
  for state in $(value StateDirectory); do install -d -o "$user" -g "$user" -m 0750 "/var/lib/$state"; done
  local env=()
  while read -r assignment; do [ -n "$assignment" ] && env+=("$assignment"); done < <(value Environment)
  envfile=$(value EnvironmentFile)
  if [ -n "$envfile" ]; then
    local optional=false path=$envfile
    [ "${envfile:0:1}" = "-" ] && optional=true && path=${envfile:1}
    if [ -f "$path" ]; then
      while IFS= read -r line; do [ -n "$line" ] && [ "${line:0:1}" != "#" ] && env+=("$line"); done < "$path"
    elif ! $optional; then echo "error: $path: no such EnvironmentFile" >&2; exit 1; fi
  fi
  local pre; pre=$(value ExecStartPre)
  if [ -n "$pre" ]; then
    # shellcheck disable=SC2086
    runuser -u "$user" -- env "${env[@]}" $pre >> "/var/log/$unit.log" 2>&1 ||
      { echo "error: $unit: ExecStartPre failed (see /var/log/$unit.log)" >&2; exit 1; }
  fi
  # shellcheck disable=SC2046
  setsid runuser -u "$user" -- env "${env[@]}" $(value ExecStart) >> "/var/log/$unit.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  sleep 0.5
  running || { echo "error: $unit exited at once (see /var/log/$unit.log)" >&2; exit 1; }
  echo "started"
}
case $action in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: service.sh start|restart|stop UNIT" >&2; exit 2 ;;
esac
