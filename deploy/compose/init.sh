#!/usr/bin/env bash
# Prepares the compose stack once: .env from .env.example, and the secrets under ./secrets
# (owned by the image's uid 10001, mode 0600, never in compose.yaml):
#   admin-token                 the controller's bootstrap admin token
#   signing-key.json/.password  the tree's signing key (Web3 keystore) and its password
#   node-key-N.json/.password   agent N's node key and its password
#   postgres-password           the database superuser's password
#   alertmanager-smtp-password  for alertmanager.yml's e-mail receiver (empty until you set it)
# Safe to run again: what exists is kept. Keys are made with the image (no binary on the host).
#   bash init.sh [AGENTS]       # default 3 agents (compose.yaml defines agent-1..agent-3)
set -euo pipefail
cd "$(dirname "$0")"
agents=${1:-3}
engine=${CONTAINER_ENGINE:-podman}

[ -f .env ] || cp .env.example .env
random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
if grep -q '^POSTGRES_PASSWORD=$' .env; then
  sed -i "s/^POSTGRES_PASSWORD=$/POSTGRES_PASSWORD=$(random)/" .env
fi
set -a; . ./.env; set +a

install -d -m 0700 secrets
secret() { # name, contents
  if [ ! -e "secrets/$1" ]; then
    (umask 077; printf '%s\n' "$2" > "secrets/$1")
    echo "made secrets/$1" >&2
  fi
}
secret admin-token "$(random)"
secret postgres-password "$POSTGRES_PASSWORD"
secret signing-key.password "$(random)"
[ -e secrets/alertmanager-smtp-password ] || (umask 077; : > secrets/alertmanager-smtp-password)
for n in $(seq 1 "$agents"); do secret "node-key-$n.password" "$(random)"; done

# The image's user must read its secrets; nobody else may.
chown -R 10001:10001 secrets
chmod 0700 secrets
chmod 0600 secrets/*
# Postgres and Alertmanager run as their own users in their images: their files are readable
# by those (a bind-mounted secret keeps the host's owner).
chmod 0644 secrets/postgres-password secrets/alertmanager-smtp-password

keystore() { # keystore file under secrets/, its password file
  [ -e "secrets/$1" ] && return
  $engine run --rm --no-healthcheck --network none -v "$PWD/secrets:/secrets" "$WAKUFLEET_IMAGE" \
    key new "/secrets/$1" --password-file "/secrets/$2" >/dev/null
  echo "made secrets/$1" >&2
}
keystore signing-key.json signing-key.password
for n in $(seq 1 "$agents"); do keystore "node-key-$n.json" "node-key-$n.password"; done

$engine run --rm --no-healthcheck --network none -v "$PWD/secrets:/secrets:ro" "$WAKUFLEET_IMAGE" \
  key show /secrets/signing-key.json --password-file /secrets/signing-key.password --domain "boot.$ZONE" |
  grep -o 'enrtree://[^ ]*' | tee secrets/tree-url >&2
