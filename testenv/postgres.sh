#!/usr/bin/env bash
# A throwaway PostgreSQL on loopback, for the tests and the demo.
#
#   testenv/postgres.sh start DIR   initialise (once) and start a cluster in DIR;
#                                   prints DATABASE_URL=... on stdout
#                                   (AURUM_POSTGRES_PORT=N: on port N)
#   testenv/postgres.sh stop DIR    stop it (the data stays in DIR)
#   testenv/postgres.sh url DIR     print DATABASE_URL=... of a started cluster
#   testenv/postgres.sh fresh-db URL NAME
#                                   drop (if present) and create database NAME on
#                                   URL's server; prints NAME's URL
#   testenv/postgres.sh drop-db URL NAME
#                                   drop database NAME on URL's server
#
# Installs Debian's PostgreSQL when no server binaries are found. The server runs
# as the unprivileged `postgres` user (PostgreSQL refuses to run as root), listens
# on 127.0.0.1 only, on the first free port from 25432 up (below the ephemeral
# port range, so no outgoing connection takes it meanwhile), with password auth.
#
# TLS is on, with a test CA made by openssl in DIR/tls: the server's certificate
# names `localhost` only (so verify-full by 127.0.0.1 fails on the host name), a
# second CA signs nothing (a wrong sslrootcert), and the user `aurum_tls` may log
# in over TLS only (`disable` is refused). `start` and `url` also print
# AURUM_PG_TLS_CA, AURUM_PG_TLS_OTHER_CA and AURUM_PG_TLS_ONLY_URL (that user's
# URL, by host name localhost, no sslmode).
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return 0
  fi
  return 1
}

ensure_installed() {
  if ! find_bindir >/dev/null; then
    log "installing PostgreSQL from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql postgresql-client >&2
  fi
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The folder holding the cluster. PostgreSQL runs as `postgres`, which cannot
# reach a DIR under root's home; such a DIR gets its cluster under /var/tmp.
cluster_home() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    echo "/var/tmp/aurum-postgres/$(printf %s "$dir" | md5sum | cut -c1-16)"
  else
    echo "$dir"
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

print_url() {
  local dir
  dir=$(cluster_home "$1")
  local port password
  port=$(cat "$dir/port")
  password=$(cat "$dir/password")
  echo "DATABASE_URL=postgres://aurum:${password}@127.0.0.1:${port}/aurum"
  echo "AURUM_PG_TLS_CA=$dir/tls/ca.crt"
  echo "AURUM_PG_TLS_OTHER_CA=$dir/tls/other-ca.crt"
  echo "AURUM_PG_TLS_ONLY_URL=postgres://aurum_tls:${password}@localhost:${port}/aurum"
}

# A test CA, a server certificate for `localhost` signed by it, and a second CA
# that signs nothing; made once per cluster.
make_certs() {
  local tls=$1/tls
  [ -f "$tls/server.key" ] && return 0
  log "making a test CA and a server certificate for localhost in $tls"
  mkdir -p "$tls"
  (
    cd "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Aurum test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Aurum other CA" \
      -keyout other-ca.key -out other-ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -days 3650 -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext ca.srl
    chmod 600 ./*.key
    chmod 644 ./*.crt
  )
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tls"; fi
  chmod 755 "$tls"
}

# `aurum_tls` may log in over TLS only: refused before any other line matches.
tls_only_hba() {
  local hba=$1/data/pg_hba.conf
  grep -q '^hostnossl all aurum_tls' "$hba" && return 0
  { echo "hostnossl all aurum_tls all reject"; cat "$hba"; } > "$hba.new"
  mv "$hba.new" "$hba"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$hba"; fi
}

start() {
  local dir=$1
  ensure_installed
  local bindir
  bindir=$(find_bindir)
  dir=$(cluster_home "$dir")
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initialising a cluster in $dir/data"
    umask 077
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/password"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir/password"; fi
    as_pg "$bindir/initdb" -D "$dir/data" -U aurum --auth=scram-sha-256 \
      --pwfile="$dir/password" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  make_certs "$dir"
  tls_only_hba "$dir"
  if as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    log "already running"
  else
    # AURUM_POSTGRES_PORT pins the port (a test that stops and restarts the
    # server while a client keeps its URL); otherwise a restarted cluster keeps
    # its port when it is still free, else the first free one.
    local port=25432
    if [ -n "${AURUM_POSTGRES_PORT:-}" ]; then
      port=$AURUM_POSTGRES_PORT
      port_free "$port" || { log "port $port (AURUM_POSTGRES_PORT) is taken"; exit 1; }
    elif [ -f "$dir/port" ] && port_free "$(cat "$dir/port")"; then
      port=$(cat "$dir/port")
    fi
    while ! port_free "$port"; do port=$((port + 1)); done
    echo "$port" > "$dir/port"
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key" >/dev/null
    PGPASSWORD=$(cat "$dir/password") "$bindir/psql" -h 127.0.0.1 -p "$port" -U aurum -d postgres -qtAc \
      "SELECT 1 FROM pg_database WHERE datname = 'aurum'" | grep -q 1 ||
      PGPASSWORD=$(cat "$dir/password") "$bindir/createdb" -h 127.0.0.1 -p "$port" -U aurum aurum
    PGPASSWORD=$(cat "$dir/password") "$bindir/psql" -h 127.0.0.1 -p "$port" -U aurum -d aurum -qtAc \
      "SELECT 1 FROM pg_roles WHERE rolname = 'aurum_tls'" | grep -q 1 ||
      echo "CREATE ROLE aurum_tls LOGIN CREATEDB PASSWORD :'pw'; GRANT CREATE ON DATABASE aurum TO aurum_tls;" |
      PGPASSWORD=$(cat "$dir/password") "$bindir/psql" -h 127.0.0.1 -p "$port" -U aurum -d aurum -qX \
        -v ON_ERROR_STOP=1 -v pw="$(cat "$dir/password")" >/dev/null
    log "started on 127.0.0.1:$port (log: $dir/server.log)"
  fi
  print_url "$1"
}

stop() {
  local dir
  dir=$(cluster_home "$1")
  local bindir
  bindir=$(find_bindir) || return 0
  [ -f "$dir/data/PG_VERSION" ] || return 0
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  log "stopped"
}

drop_db() {
  psql "$1" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$2\" WITH (FORCE)" >/dev/null
}

fresh_db() {
  drop_db "$1" "$2"
  psql "$1" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$2\"" >/dev/null
  echo "${1%/*}/$2"
}

case "${1:-}" in
  fresh-db) fresh_db "${2:?usage: postgres.sh fresh-db URL NAME}" "${3:?usage: postgres.sh fresh-db URL NAME}" ;;
  drop-db) drop_db "${2:?usage: postgres.sh drop-db URL NAME}" "${3:?usage: postgres.sh drop-db URL NAME}" ;;
  start) start "${2:?usage: postgres.sh start DIR}" ;;
  stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
  url) print_url "${2:?usage: postgres.sh url DIR}" ;;
  *) echo "usage: testenv/postgres.sh start|stop|url DIR, or fresh-db|drop-db URL NAME" >&2; exit 2 ;;
esac
