#!/usr/bin/env bash
# A local PostgreSQL server for Quanta's tests and CI (issue 18), owned by the project: data and
# the Unix socket under $QUANTA_PG_DIR (default /var/tmp/quanta-postgres), TCP on 127.0.0.1 only
# ($QUANTA_PG_PORT, default 55432). Makes the role `quanta` (password $QUANTA_PG_PASSWORD, default
# pg-test-secret-51; md5 over TCP, trust on the socket) and the databases quanta_test and
# quanta_campaigns. TLS is on (a self-signed certificate made here), and the database quanta_tls
# refuses connections without it — for the test that a server requiring TLS gets it. Installs
# Debian's postgresql when missing. Idempotent.
#   scripts/postgres.sh start|stop|status|url
set -euo pipefail
PROG=postgres.sh
DIR=${QUANTA_PG_DIR:-/var/tmp/quanta-postgres}
PORT=${QUANTA_PG_PORT:-55432}
PASSWORD=${QUANTA_PG_PASSWORD:-pg-test-secret-51}
DATA=$DIR/data
log() { printf '%s %s\n' "$PROG" "$*" >&2; }
fail() { log "error: $*"; exit 1; }

bin() {  # a PostgreSQL program: on PATH, else Debian's versioned directory
  command -v "$1" 2>/dev/null && return
  local d; d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && [ -x "$d/$1" ] && { echo "$d/$1"; return; }
  return 1
}

as_owner() {  # initdb and the server refuse to run as root
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  bin initdb >/dev/null && return
  [ "$(id -u)" -eq 0 ] || fail "PostgreSQL is not installed; run as root once, or: sudo apt-get install postgresql"
  log "installing postgresql (apt-get)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || fail "apt-get install postgresql failed"
  # Debian's package starts its own cluster on 5432; ours is separate and leaves it alone.
}

running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$(bin pg_ctl)" -D "$DATA" status >/dev/null 2>&1; }

start() {
  install
  mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
  if [ ! -f "$DATA/PG_VERSION" ]; then
    log "initdb in $DATA"
    as_owner "$(bin initdb)" -D "$DATA" -U postgres --auth-local=trust --auth-host=md5 -E UTF8 >/dev/null
    cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 100
fsync = on
CONF
  fi
  # TLS: a self-signed certificate, and quanta_tls reachable only over TLS.
  local changed=0
  if [ ! -f "$DATA/server.crt" ]; then
    changed=1
    as_owner openssl req -new -x509 -days 3650 -nodes -subj "/CN=localhost" \
      -keyout "$DATA/server.key" -out "$DATA/server.crt" >/dev/null 2>&1 || fail "openssl could not make the server's certificate"
    as_owner chmod 600 "$DATA/server.key"
    echo "ssl = on" >> "$DATA/postgresql.conf"
  fi
  if ! grep -q "^hostnossl quanta_tls" "$DATA/pg_hba.conf"; then
    { echo "hostnossl quanta_tls all 127.0.0.1/32 reject"; cat "$DATA/pg_hba.conf"; } > "$DIR/pg_hba.new"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/pg_hba.new"
    mv "$DIR/pg_hba.new" "$DATA/pg_hba.conf"
    changed=1
  fi
  if [ $changed -eq 1 ] && running; then as_owner "$(bin pg_ctl)" -D "$DATA" reload >/dev/null; fi
  if running; then log "running (port $PORT, socket $DIR)"; else
    as_owner "$(bin pg_ctl)" -D "$DATA" -l "$DIR/server.log" -w -t 60 start >/dev/null || { tail -5 "$DIR/server.log" >&2; fail "the server did not start (log $DIR/server.log)"; }
    log "started (port $PORT, socket $DIR)"
  fi
  local psql; psql=$(bin psql)
  q() { as_owner "$psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
  if [ "$(q "SELECT 1 FROM pg_roles WHERE rolname = 'quanta'")" != 1 ]; then
    q "CREATE ROLE quanta LOGIN PASSWORD '$PASSWORD'" >/dev/null
  else
    q "ALTER ROLE quanta PASSWORD '$PASSWORD'" >/dev/null
  fi
  for db in quanta_test quanta_campaigns quanta_tls; do
    [ "$(q "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ] || q "CREATE DATABASE $db OWNER quanta" >/dev/null
    # LSST's butler needs btree_gist in its registry's database, and only a superuser may add it.
    as_owner "$psql" -h "$DIR" -p "$PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 -qtAc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS btree_gist" >/dev/null
  done
  log "ready: role quanta, databases quanta_test, quanta_campaigns and quanta_tls (TLS only)"
}

stop() {
  if running; then as_owner "$(bin pg_ctl)" -D "$DATA" -m fast -w stop >/dev/null; log "stopped"; else log "not running"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if running; then log "running (port $PORT, socket $DIR)"; else log "not running"; exit 3; fi ;;
  url) echo "postgresql://quanta@127.0.0.1:$PORT/quanta_test" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
