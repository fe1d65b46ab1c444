#!/usr/bin/env bash
# Starts a throw-away Postgres for the test suite on a private port and data directory,
# installing the server from Debian's packages when it is missing. Sourced by scripts/test.
# Exports PG_URL (the maintenance database; tests create one database each).

PG_PORT="${TANDEM_PG_PORT:-54329}"
PG_DIR="${TANDEM_PG_DIR:-/tmp/tandem-pg-$PG_PORT}"
PG_URL="postgres://tandem:tandem@127.0.0.1:$PG_PORT/postgres"

pg_bin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [[ -n "$found" && -x "$found/$name" ]] && echo "$found/$name"
}

postgres_install() {
  if [[ -n "$(pg_bin initdb)" && -n "$(pg_bin pg_ctl)" ]]; then return; fi
  echo "Installing PostgreSQL from Debian's packages..."
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

# Runs a command as the unprivileged user that owns the cluster (initdb refuses root).
as_pg_user() {
  if [[ $(id -u) -eq 0 ]]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

postgres_start() {
  postgres_install
  local initdb pg_ctl
  initdb=$(pg_bin initdb)
  pg_ctl=$(pg_bin pg_ctl)
  if [[ -f "$PG_DIR/data/postmaster.pid" ]]; then
    as_pg_user "$pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DIR"
  [[ $(id -u) -eq 0 ]] && { id -u postgres >/dev/null 2>&1 || useradd --system postgres; chown postgres "$PG_DIR"; }
  printf 'tandem\n' > "$PG_DIR/pwfile"
  [[ $(id -u) -eq 0 ]] && chown postgres "$PG_DIR/pwfile"
  as_pg_user "$initdb" -D "$PG_DIR/data" -U tandem --pwfile="$PG_DIR/pwfile" -A scram-sha-256 >/dev/null
  as_pg_user "$pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  export PG_URL
  echo "Postgres is up on 127.0.0.1:$PG_PORT ($PG_DIR)."
}

postgres_stop() {
  local pg_ctl
  pg_ctl=$(pg_bin pg_ctl)
  as_pg_user "$pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
}
