#!/usr/bin/env bash
# A throw-away PostgreSQL 15 (Debian's postgresql-15) on 127.0.0.1, for tests and benchmarks.
#   scripts/services/postgres.sh start   prints DATABASE_URL=postgres://sluice:PASS@127.0.0.1:PORT/sluice
#   scripts/services/postgres.sh stop    stops it and deletes its directory
#   scripts/services/postgres.sh restart restarts the server, keeping its data (for outage tests)
#   scripts/services/postgres.sh down|up stops the server keeping its data, starts it again
# Settings by environment: PG_DIR (required), PG_PORT (required).
# The role may create databases: each test takes a fresh database of its own.
# Durability is off (fsync, synchronous_commit): the data is thrown away. Never copy these settings.
set -euo pipefail
: "${PG_DIR:?set PG_DIR}" "${PG_PORT:?set PG_PORT}"
BIN=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }

start() {
  [ -x "$BIN/postgres" ] || { echo "postgresql-15 is not installed (apt-get install -y --no-install-recommends postgresql-15)" >&2; exit 1; }
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then echo "a PostgreSQL already runs in $PG_DIR: stop it first" >&2; exit 1; fi
  rm -rf "$PG_DIR"; mkdir -p "$PG_DIR"; [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  local pass; pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  as_pg "$BIN/initdb -D '$PG_DIR/data' -U postgres --auth=trust -E UTF8 >'$PG_DIR/initdb.log' 2>&1" \
    || { echo "initdb failed: see $PG_DIR/initdb.log" >&2; exit 1; }
  cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
CONF
  # Password auth over TCP, as in a real deployment.
  printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' >"$PG_DIR/data/pg_hba.conf"
  as_pg "$BIN/pg_ctl -D '$PG_DIR/data' -l '$PG_DIR/server.log' -w -t 30 start >/dev/null" \
    || { echo "PostgreSQL did not start on port $PG_PORT: $(tail -n 3 "$PG_DIR/server.log" 2>/dev/null | tr '\n' ' ')" >&2; exit 1; }
  as_pg "$BIN/psql -h '$PG_DIR' -p $PG_PORT -U postgres -qc \"CREATE ROLE sluice LOGIN CREATEDB PASSWORD '$pass'\" -c 'CREATE DATABASE sluice OWNER sluice'"
  echo "DATABASE_URL=postgres://sluice:$pass@127.0.0.1:$PG_PORT/sluice"
}

stop() {
  if [ -f "$PG_DIR/data/postmaster.pid" ]; then as_pg "$BIN/pg_ctl -D '$PG_DIR/data' -m immediate -w stop >/dev/null" || true; fi
  rm -rf "$PG_DIR"
}

restart() { as_pg "$BIN/pg_ctl -D '$PG_DIR/data' -l '$PG_DIR/server.log' -m fast -w restart >/dev/null"; }
down() { as_pg "$BIN/pg_ctl -D '$PG_DIR/data' -m fast -w stop >/dev/null"; }
up() { as_pg "$BIN/pg_ctl -D '$PG_DIR/data' -l '$PG_DIR/server.log' -w -t 30 start >/dev/null"; }

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  down) down ;;
  up) up ;;
  *) echo "usage: $0 start|stop|restart|down|up" >&2; exit 2 ;;
esac
