#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests talk to, then runs them.
#   bash tests/run.sh            # everything
#   bash tests/run.sh dns::      # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests use: dig and kdig query our DNS server; BIND's named-checkzone and
# named-compilezone parse our zone files; knotd takes our RFC 2136 updates; promtool checks our
# metrics; Prometheus and Alertmanager route our alerts; Chromium renders the dashboard.
need=()
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v kdig >/dev/null 2>&1 || need+=(knot-dnsutils)
# knotd lives in /usr/sbin, which is not on every user's PATH.
command -v knotd >/dev/null 2>&1 || [ -x /usr/sbin/knotd ] || need+=(knot)
command -v named-compilezone >/dev/null 2>&1 || need+=(bind9-utils)
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need+=(nsd)   # bench dns compares with it
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)     # promtool checks our /metrics
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)  # routes alerts end to end
command -v openssl >/dev/null 2>&1 || need+=(openssl)         # certificates for the WSS tests
command -v jq >/dev/null 2>&1 || need+=(jq)                   # the README's walkthrough uses it
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)       # renders the dashboard headless
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Postgres for the store tests: the machine's server on 127.0.0.1:5432 with trust auth. Start
# it if it is stopped; on a machine without one, install it and trust loopback connections.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing postgresql" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    for hba in /etc/postgresql/*/main/pg_hba.conf; do
      echo "host all all 127.0.0.1/32 trust" | $sudo tee "$hba.wakufleet" >/dev/null
      $sudo sh -c "cat '$hba' >> '$hba.wakufleet' && mv '$hba.wakufleet' '$hba'"
    done
  fi
  for version in $(ls /etc/postgresql); do
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
# Databases that earlier runs' tests created.
psql -h 127.0.0.1 -U postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'wakufleet_test_%' OR datname LIKE 'wakufleet_agent_%'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done

# js-waku, the interop peer, with Node.js 22 from npm (the machine's Node may be older), and
# Playwright (playwright-core: no browser download, it drives Debian's Chromium) for the
# dashboard's forms; the lockfiles pin every package.
for package in node22 js-waku-relay js-waku-light dashboard; do
  dir=tests/interop/$package
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    echo "installing $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$dir/node_modules"
  fi
done

exec cargo test --workspace --locked "$@"
