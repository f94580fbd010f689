#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for tests/test_postgres.py, on loopback, in a temporary folder.
#
#   url=$(bash .ci/postgres.sh start)   # prints postgresql+psycopg://chatrec@127.0.0.1:PORT/chatrec_test
#   CHATREC_TEST_POSTGRES_URL=$url .venv/bin/python -m pytest tests/test_postgres.py
#   bash .ci/postgres.sh stop           # stops the server and deletes its folder
#
# Only the URL goes to stdout; progress and errors go to stderr. PostgreSQL refuses to run as root,
# so as root the server runs as the `postgres` system user (created by the Debian package). Trust
# authentication is safe here because the server listens on 127.0.0.1 only and lives for one run.
# The folder of the running server is recorded in $CHATREC_PG_STATE (default below), so `stop`
# finds it from another shell.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
STATE=${CHATREC_PG_STATE:-${TMPDIR:-/tmp}/chatrec-ci-postgres-$(id -u).dir}
DB=chatrec_test
ROLE=chatrec

say() { echo "postgres.sh: $*" >&2; }

as_server_user() {
  # PostgreSQL will not start as root; drop to the postgres user when we are root.
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  [ -x "$PG_BIN/initdb" ] || { say "no $PG_BIN/initdb: apt-get install postgresql (Debian) first"; exit 1; }
  if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    say "running as root but there is no 'postgres' user to run the server as"; exit 1
  fi
  if [ -f "$STATE" ] && [ -d "$(cat "$STATE")" ]; then
    say "a server from an earlier run is still recorded in $STATE; stopping it first"
    stop
  fi
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/chatrec-pg.XXXXXX")
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  echo "$dir" > "$STATE"
  as_server_user "$PG_BIN/initdb" -D "$dir/data" -U "$ROLE" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; say "initdb failed"; exit 1; }
  port=$(free_port)
  # fsync off: a test server that is thrown away after the run needs no durability, and it is faster.
  if ! as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >&2; then
    cat "$dir/server.log" >&2 || true
    say "the server did not start"; exit 1
  fi
  echo "$port" > "$dir/port"
  as_server_user "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$ROLE" "$DB" >&2
  say "PostgreSQL running in $dir on 127.0.0.1:$port"
  echo "postgresql+psycopg://$ROLE@127.0.0.1:$port/$DB"
}

stop() {
  [ -f "$STATE" ] || { say "nothing to stop (no $STATE)"; return 0; }
  local dir
  dir=$(cat "$STATE")
  if [ -d "$dir/data" ]; then
    as_server_user "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || say "pg_ctl stop failed"
  fi
  case "$dir" in
    */chatrec-pg.*) rm -rf -- "$dir" ;;  # only ever delete a folder this script created
  esac
  rm -f -- "$STATE"
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: bash .ci/postgres.sh start|stop" >&2; exit 2 ;;
esac
