#!/bin/bash
# Entrypoint of the test-only PostgreSQL image (testenv/images/postgres): on the
# first start, initialise PGDATA as the running user (initdb, the superuser
# POSTGRES_USER with POSTGRES_PASSWORD, scram-sha-256 for every network
# connection, POSTGRES_DB created, the scripts of /docker-entrypoint-initdb.d
# run), then exec the server with the given
# arguments. Arguments starting with `-` are the server's (`-c port=5432`).
# Writes only to PGDATA and /var/run/postgresql, so the root filesystem may be
# read-only.
set -Eeuo pipefail

log() { echo "postgres-entrypoint: $*" >&2; }

if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

# Started as root (e.g. `docker run` without --user): drop to postgres (999).
if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set: the password of POSTGRES_USER}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  # The volume's root may be owned by root with group access (fsGroup):
  # initdb wants its own directory, 0700.
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  log "initialising $PGDATA (superuser $user, database $db)"
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    -D "$PGDATA" >&2
  # As the official image: every address may connect, with a password.
  {
    echo
    echo "listen_addresses = '*'"
  } >> "$PGDATA/postgresql.conf"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  # A server on the Unix socket only, for the setup.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w -t 60 start >&2
  if [ "$db" != postgres ]; then
    # From stdin, not -c: psql interpolates :"db" (quoted as an identifier) only there.
    psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc -p "${PGPORT:-5432}" \
      --username "$user" --dbname postgres --set db="$db" >&2 <<'EOSQL'
CREATE DATABASE :"db";
EOSQL
  fi
  # As the official image: the scripts of /docker-entrypoint-initdb.d, in
  # order, executed when executable, else sourced.
  export POSTGRES_USER=$user POSTGRES_DB=$db PGPORT=${PGPORT:-5432}
  for script in /docker-entrypoint-initdb.d/*.sh; do
    [ -e "$script" ] || continue
    log "running $script"
    if [ -x "$script" ]; then "$script" >&2; else . "$script" >&2; fi
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >&2
  log "initialised"
fi

exec "$@"
