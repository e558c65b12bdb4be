#!/usr/bin/env bash
# A throwaway real Hive Metastore on loopback, for the tests and the demo: the
# Apache Hive standalone Metastore (4.0.1), one JVM, with an embedded Derby
# database as its backing store.
#
#   testenv/metastore.sh start DIR   start a Metastore with a fresh, empty catalog in
#                                    DIR (a no-op if it already runs); prints
#                                    AURUM_METASTORE_URL=thrift://127.0.0.1:PORT
#   testenv/metastore.sh stop DIR    stop it (the catalog stays in DIR until the
#                                    next start, which starts afresh)
#   testenv/metastore.sh env DIR     print the line again
#   testenv/metastore.sh jars        fetch the jars only (once); prints
#                                    AURUM_METASTORE_LIB=...
#   testenv/metastore.sh spark-client-jars
#                                    fetch (once) the Hive 4.0.1 metastore client
#                                    jars Spark needs for this Metastore
#                                    (spark.sql.hive.metastore.jars=path, see
#                                    testenv/metastore/spark-client/pom.xml); prints
#                                    AURUM_SPARK_HIVE_JARS=DIR
#
# The jars come from Maven Central through testenv/metastore/pom.xml, once, into
# $AURUM_CACHE/metastore/lib (default ~/.cache/aurum; Maven's local repository is
# $AURUM_CACHE/m2). Hadoop's jars (the FileSystem the Metastore checks file:// and
# hdfs:// locations with) are testenv/hdfs.sh's: `hdfs.sh jars` is run for them.
#
# The catalog's tables are created by DataNucleus on first start
# (datanucleus.schema.autoCreateAll; the Hive distribution's schematool scripts are
# not in the Maven jars), once into a cached template database that every start
# copies, so a warm start does no schema work. Warehouse (for databases without
# a location): DIR/warehouse. The Metastore runs as the user running this script,
# which is also the HDFS client user of testenv/hdfs.sh (owner of /aurum).
#
# Environment: AURUM_CACHE, AURUM_METASTORE_BASE_PORT (first port tried, default
# 29300), AURUM_METASTORE_JVM_OPTS (default -XX:TieredStopAtLevel=1), JAVA, MVN.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_CACHE:-$HOME/.cache/aurum}
lib=$cache/metastore/lib
m2=$cache/m2
java=${JAVA:-java}
mvn=${MVN:-mvn}

log() { echo "metastore.sh: $*" >&2; }
die() { echo "metastore.sh: $*" >&2; exit 1; }

ensure_jars() {
  command -v "$java" >/dev/null || die "no java on PATH (Java 17 needed; set JAVA=...)"
  local stamp want
  want=$(sha256sum "$here/metastore/pom.xml" | cut -d' ' -f1)
  stamp=$lib/.aurum-pom-sha256
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    command -v "$mvn" >/dev/null || die "no mvn on PATH (apt-get install maven, or set MVN=...)"
    log "fetching the Hive Metastore jars into $lib (Maven, local repository $m2)"
    rm -rf "$lib"
    mkdir -p "$lib" "$m2"
    local mlog=$cache/metastore/maven.log
    if ! "$mvn" -B -q -f "$here/metastore/pom.xml" -Dmaven.repo.local="$m2" \
        -Daurum.metastore.lib="$lib" package >"$mlog" 2>&1; then
      tail -n 30 "$mlog" >&2
      die "Maven could not fetch the Hive Metastore jars (full log: $mlog)"
    fi
    rm -rf "$here/metastore/target"
    ls "$lib"/hive-standalone-metastore-server-*.jar >/dev/null 2>&1 ||
      die "no hive-standalone-metastore-server jar in $lib after Maven ran"
    echo "$want" > "$stamp"
  fi
  # Hadoop: the jars of the test HDFS
  hadoop_lib=$("$here/hdfs.sh" jars | sed -n 's/^AURUM_HDFS_LIB=//p')
  [ -n "$hadoop_lib" ] || die "testenv/hdfs.sh jars printed no AURUM_HDFS_LIB"
}

pidfile() { echo "$1/run/metastore.pid"; }

running() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "-Daurum.metastore.role=$1 " || return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below Linux's ephemeral range (see hdfs.sh), free now.
pick_port() {
  local p=${AURUM_METASTORE_BASE_PORT:-29300}
  while ! port_free "$p"; do
    p=$((p + 1))
    [ "$p" -lt 65000 ] || die "no free port found"
  done
  echo "$p"
}

prop() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }

# write_conf CONFDIR DBDIR WAREHOUSE PORT
write_conf() {
  local conf=$1 db=$2 warehouse=$3 port=$4
  mkdir -p "$conf"
  {
    echo '<?xml version="1.0"?>'
    echo '<!-- written by testenv/metastore.sh -->'
    echo '<configuration>'
    prop metastore.thrift.port "$port"
    prop metastore.thrift.bind.host 127.0.0.1
    prop metastore.thrift.uris "thrift://127.0.0.1:$port"
    prop javax.jdo.option.ConnectionURL "jdbc:derby:;databaseName=$db;create=true"
    prop javax.jdo.option.ConnectionDriverName org.apache.derby.jdbc.EmbeddedDriver
    prop javax.jdo.option.ConnectionUserName APP
    prop javax.jdo.option.ConnectionPassword mine
    prop datanucleus.schema.autoCreateAll true
    prop metastore.schema.verification false
    prop datanucleus.connectionPoolingType None
    prop metastore.warehouse.dir "file://$warehouse"
    prop metastore.warehouse.external.dir "file://$warehouse/external"
    prop metastore.event.db.notification.api.auth false
    prop metastore.metrics.enabled false
    prop metastore.compactor.initiator.on false
    prop metastore.server.min.threads 4
    prop metastore.server.max.threads 64
    prop metastore.try.direct.sql true
    prop metastore.stats.autogather false
    # no background housekeeping threads (they poll the database every few seconds)
    prop metastore.task.threads.always ''
    prop metastore.task.threads.remote ''
    prop hive.security.authorization.manager ''
    echo '</configuration>'
  } > "$conf/metastore-site.xml"
  cat > "$conf/log4j2.properties" <<'L4J'
# written by testenv/metastore.sh: warnings and the start line to the .out file
status = error
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{ISO8601} %p %c{2}: %m%n
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
logger.hms.name = org.apache.hadoop.hive.metastore.HiveMetaStore
logger.hms.level = INFO
L4J
}

jvm_opts() {
  echo "${AURUM_METASTORE_JVM_OPTS--XX:TieredStopAtLevel=1} -XX:+UseSerialGC -XX:-UsePerfData -Djava.net.preferIPv4Stack=true" \
    "--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED" \
    "--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED"
}

# launch DIR CONFDIR: the Metastore JVM in its own session
launch() {
  local dir=$1 conf=$2
  mkdir -p "$dir/logs" "$dir/run"
  # shellcheck disable=SC2046
  setsid "$java" -Xmx512m $(jvm_opts) -Daurum.metastore.role="$dir" \
    -Dlog4j2.configurationFile="$conf/log4j2.properties" -Dderby.stream.error.file="$dir/logs/derby.log" \
    -Dhadoop.home.dir="$dir" -cp "$conf:$lib/*:$hadoop_lib/*" \
    org.apache.hadoop.hive.metastore.HiveMetaStore \
    </dev/null >>"$dir/logs/metastore.out" 2>&1 9>&- &
  local pid=$! i
  echo "$pid" > "$(pidfile "$dir")"
  for i in $(seq 1 100); do
    running "$dir" && return 0
    [ -d "/proc/$pid" ] || break
    sleep 0.05
  done
  running "$dir" || die "the Metastore did not start (log: $dir/logs/metastore.out)"
}

stop_proc() {
  local dir=$1 sig=$2 pid i
  running "$dir" || { rm -f "$(pidfile "$dir")"; return 0; }
  pid=$(cat "$(pidfile "$dir")")
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    [ -d "/proc/$pid" ] || break
    grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$(pidfile "$dir")"
}

# wait_port DIR PORT TIMEOUT: the Thrift port accepts connections (the Metastore
# opens it once its database is initialised and the default database exists)
wait_port() {
  local dir=$1 port=$2 timeout=$3 start=$SECONDS
  while port_free "$port"; do
    running "$dir" || { tail -n 30 "$dir/logs/metastore.out" >&2; die "the Metastore exited (log: $dir/logs/metastore.out)"; }
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      tail -n 30 "$dir/logs/metastore.out" >&2
      die "the Metastore did not open port $port within ${timeout}s (log: $dir/logs/metastore.out)"
    fi
    sleep 0.25
  done
}

# template_db: a Derby database with the Metastore's schema, made once (a
# Metastore start on an empty database, then stopped) and copied per start.
template_db() {
  local tmpl=$cache/metastore/derby-template
  if [ -f "$tmpl/.aurum-pom-sha256" ] && cmp -s "$tmpl/.aurum-pom-sha256" "$lib/.aurum-pom-sha256"; then
    return 0
  fi
  log "creating the Metastore's schema in an empty Derby database (once, cached in $tmpl)"
  local work=$cache/metastore/derby-template.work port
  rm -rf "$tmpl" "$work"
  mkdir -p "$work"
  port=$(pick_port)
  write_conf "$work/conf" "$work/db" "$work/warehouse" "$port"
  launch "$work" "$work/conf"
  wait_port "$work" "$port" 300
  stop_proc "$work" TERM
  [ -f "$work/db/service.properties" ] || die "no Derby database in $work/db after the first start"
  cp "$lib/.aurum-pom-sha256" "$work/db/"
  mv "$work/db" "$tmpl"
  rm -rf "$work"
}

print_env() {
  local dir=$1
  [ -f "$dir/port" ] || die "no Metastore in $dir (run: testenv/metastore.sh start $dir)"
  echo "AURUM_METASTORE_URL=thrift://127.0.0.1:$(cat "$dir/port")"
}

absdir() { mkdir -p "$1" && (cd "$1" && pwd); }

start() {
  local dir port
  dir=$(absdir "$1")
  mkdir -p "$cache/metastore"
  exec 9>"$cache/metastore/.start.lock"
  flock 9
  ensure_jars
  if running "$dir"; then
    wait_port "$dir" "$(cat "$dir/port")" 120
    log "already running"
    print_env "$dir"
    return 0
  fi
  local began=$SECONDS
  template_db
  rm -rf "$dir/db" "$dir/warehouse" "$dir/logs" "$dir/run" "$dir/conf" "$dir/port"
  mkdir -p "$dir/warehouse" "$dir/logs" "$dir/run"
  cp -a "$cache/metastore/derby-template" "$dir/db"
  rm -f "$dir/db/.aurum-pom-sha256"
  port=$(pick_port)
  echo "$port" > "$dir/port"
  write_conf "$dir/conf" "$dir/db" "$dir/warehouse" "$port"
  launch "$dir" "$dir/conf"
  wait_port "$dir" "$port" 180
  log "started: Hive Metastore thrift://127.0.0.1:$port in $((SECONDS - began)) s (logs: $dir/logs)"
  print_env "$dir"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  stop_proc "$dir" TERM
  log "stopped"
}

jars() {
  mkdir -p "$cache/metastore"
  exec 9>"$cache/metastore/.start.lock"
  flock 9
  ensure_jars
  echo "AURUM_METASTORE_LIB=$lib"
}

spark_client_jars() {
  local dir=$cache/spark-hive-4.0.1 pom=$here/metastore/spark-client/pom.xml want
  mkdir -p "$cache/metastore"
  exec 9>"$cache/metastore/.start.lock"
  flock 9
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ ! -f "$dir/.aurum-pom-sha256" ] || [ "$(cat "$dir/.aurum-pom-sha256")" != "$want" ]; then
    command -v "$mvn" >/dev/null || die "no mvn on PATH (apt-get install maven, or set MVN=...)"
    log "fetching the Hive 4.0.1 metastore client jars for Spark into $dir (Maven)"
    rm -rf "$dir"
    mkdir -p "$dir" "$m2"
    local mlog=$cache/metastore/maven-spark-client.log
    if ! "$mvn" -B -q -f "$pom" -Dmaven.repo.local="$m2" -Daurum.spark.hive.lib="$dir" package >"$mlog" 2>&1; then
      tail -n 30 "$mlog" >&2
      die "Maven could not fetch the Hive client jars (full log: $mlog)"
    fi
    rm -rf "$here/metastore/spark-client/target"
    ls "$dir"/hive-metastore-*.jar >/dev/null 2>&1 || die "no hive-metastore jar in $dir after Maven ran"
    echo "$want" > "$dir/.aurum-pom-sha256"
  fi
  echo "AURUM_SPARK_HIVE_JARS=$dir"
}

usage() {
  echo "usage: testenv/metastore.sh start|stop|env DIR | jars | spark-client-jars" >&2
  exit 2
}

cmd=${1:-}
case "$cmd" in
  start|stop|env) [ $# -eq 2 ] || usage ;;
  jars|spark-client-jars) [ $# -eq 1 ] || usage ;;
  *) usage ;;
esac
case "$cmd" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  env) print_env "$(cd "$2" && pwd)" ;;
  jars) jars ;;
  spark-client-jars) spark_client_jars ;;
esac
