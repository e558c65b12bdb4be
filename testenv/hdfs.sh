#!/usr/bin/env bash
# A throwaway real HDFS on loopback, for the tests and the demo: one NameNode and
# two DataNodes, each its own JVM, run from Apache Hadoop jars.
#
#   testenv/hdfs.sh start DIR             format a fresh NameNode in DIR and start it
#                                         and two DataNodes (a no-op if they already
#                                         run); prints HADOOP_CONF_DIR=... and
#                                         AURUM_HDFS_URL=... on stdout
#   testenv/hdfs.sh stop DIR              stop all three (the data stays in DIR until
#                                         the next start, which formats afresh)
#   testenv/hdfs.sh env DIR               print the two lines again
#   testenv/hdfs.sh jars                  fetch the jars only (once); prints
#                                         AURUM_HDFS_LIB=... and AURUM_HDFS_WEB=...
#                                         (scripts/images.sh puts them in an image)
#   testenv/hdfs.sh kill-datanode DIR N   SIGKILL DataNode N (1 or 2), as a crash would
#   testenv/hdfs.sh start-datanode DIR N  start DataNode N again (a no-op if it runs)
#                                         and wait until it heartbeats to the NameNode
#   testenv/hdfs.sh wait-datanode-dead DIR N
#                                         wait until the NameNode has declared
#                                         DataNode N dead and dropped it (15-20 s
#                                         after a kill), so that new blocks go to
#                                         the survivor only
#
# The jars come from Maven Central through testenv/hdfs/pom.xml, once, into
# $AURUM_CACHE/hdfs/lib (default ~/.cache/aurum; Maven's local repository is
# $AURUM_CACHE/m2), so a warm start runs no Maven at all.
#
# The cluster: replication 2, permissions on, everything on 127.0.0.1 with ports
# chosen free at start (recorded in DIR/ports). The daemons run as HDFS user `hdfs`
# (HADOOP_USER_NAME; Hadoop's simple auth trusts it), so `hdfs` is the superuser and
# the client user (AURUM_HDFS_USER, default: the user running this script, e.g. root)
# is an ordinary user that owns /aurum. Writing outside /aurum and /tmp is therefore
# a real "permission denied". The NameNode declares a DataNode dead 15-20 s after
# its last heartbeat (heartbeat 1 s, recheck 2.5 s, monitor every 5 s). A stale one
# (3 s) is avoided for new blocks only while enough others exist: with two
# DataNodes the NameNode falls back to the stale one for the second replica. So
# until it is dead a new block may still be placed on a killed DataNode:
# hdfs-native 0.13 recovers a pipeline that loses a DataNode inside a block, but
# fails a write whose new block includes the dead one ("Connection refused").
# `wait-datanode-dead` waits until the NameNode has dropped it; from then on
# writes go to the survivor alone (one replica, under-replicated).
#
# Layout: DIR/conf (the client configuration, what HADOOP_CONF_DIR points at),
# DIR/nn/conf and DIR/dnN/conf (each daemon's own, with its ports and data dir),
# DIR/data, DIR/logs (NAME.out per daemon), DIR/run (pid files), DIR/ports.
#
# Environment: AURUM_CACHE, AURUM_HDFS_USER, AURUM_HDFS_BLOCKSIZE (bytes or 128m
# style, default 128m), AURUM_HDFS_BASE_PORT (first port tried, default 29100),
# AURUM_HDFS_JVM_OPTS (default -XX:TieredStopAtLevel=1), JAVA (default: java on
# PATH), MVN (default: mvn on PATH).
#
# Heaps: NameNode 512m, DataNodes 256m each. One start costs ~11 s of CPU in all.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${AURUM_CACHE:-$HOME/.cache/aurum}
lib=$cache/hdfs/lib
web=$cache/hdfs/web
m2=$cache/m2
java=${JAVA:-java}
mvn=${MVN:-mvn}
hdfs_user=hdfs
client_user=${AURUM_HDFS_USER:-$(id -un)}
blocksize=${AURUM_HDFS_BLOCKSIZE:-128m}
datanodes="1 2"

log() { echo "hdfs.sh: $*" >&2; }
die() { echo "hdfs.sh: $*" >&2; exit 1; }

# --- the jars ---------------------------------------------------------------------

ensure_jars() {
  command -v "$java" >/dev/null || die "no java on PATH (Java 11+ needed; set JAVA=...)"
  local stamp want
  want=$(sha256sum "$here/hdfs/pom.xml" | cut -d' ' -f1)
  stamp=$lib/.aurum-pom-sha256
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v "$mvn" >/dev/null || die "no mvn on PATH (apt-get install maven, or set MVN=...)"
  log "fetching the Hadoop jars into $lib (Maven, local repository $m2)"
  rm -rf "$lib"
  mkdir -p "$lib" "$m2"
  local mlog=$cache/hdfs/maven.log
  if ! "$mvn" -B -q -f "$here/hdfs/pom.xml" -Dmaven.repo.local="$m2" \
      -Daurum.hdfs.lib="$lib" package >"$mlog" 2>&1; then
    tail -n 30 "$mlog" >&2
    die "Maven could not fetch the Hadoop jars (full log: $mlog)"
  fi
  # Maven writes nothing into the repo for a pom-packaged project, but be sure.
  rm -rf "$here/hdfs/target"
  ls "$lib"/hadoop-hdfs-[0-9]*.jar >/dev/null 2>&1 || die "no hadoop-hdfs jar in $lib after Maven ran"
  echo "$want" > "$stamp"
}

# The daemons' web servers (which also serve /jmx, used below to wait for
# readiness) look up webapps/NAME on the classpath; the Maven jars do not carry
# the web UI (the binary tarball does), so give them empty ones.
ensure_webapps() {
  local w
  for w in hdfs datanode secondary journal static; do
    if [ ! -f "$web/webapps/$w/index.html" ]; then
      mkdir -p "$web/webapps/$w/WEB-INF"
      echo "<html><body>Aurum test HDFS: see /jmx</body></html>" > "$web/webapps/$w/index.html"
    fi
  done
}

# --- processes --------------------------------------------------------------------

pidfile() { echo "$1/run/$2.pid"; }

# running DIR NAME: the recorded pid is alive and is our JVM for this DIR and role
running() {
  local f pid
  f=$(pidfile "$1" "$2")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "-Daurum.hdfs.role=$1/$2 " || return 1
}

jvm_opts() {
  # C1 only (TieredStopAtLevel=1) halves the CPU a start costs on two cores;
  # AURUM_HDFS_JVM_OPTS replaces it (set it empty for the full JIT).
  echo "${AURUM_HDFS_JVM_OPTS--XX:TieredStopAtLevel=1} -XX:+UseSerialGC -XX:-UsePerfData -Djava.net.preferIPv4Stack=true" \
    "--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED" \
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED" \
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED"
}

# launch DIR NAME CONFDIR HEAP CLASS ARGS...: start a daemon JVM in its own session
launch() {
  local dir=$1 name=$2 conf=$3 heap=$4 class=$5
  shift 5
  mkdir -p "$dir/logs" "$dir/run"
  # shellcheck disable=SC2046
  HADOOP_USER_NAME=$hdfs_user setsid "$java" -Xmx"$heap" $(jvm_opts) \
    -Daurum.hdfs.role="$dir/$name" -Dhadoop.log.dir="$dir/logs" -Dhadoop.log.file="$name.log" \
    -Dhadoop.home.dir="$dir" -Dproc_"$name" \
    -cp "$conf:$web:$lib/*" "$class" "$@" \
    </dev/null >>"$dir/logs/$name.out" 2>&1 9>&- &
  local pid=$! i
  echo "$pid" > "$(pidfile "$dir" "$name")"
  # until the fork has exec'd java, /proc/PID/cmdline is still this shell's
  for i in $(seq 1 100); do
    running "$dir" "$name" && return 0
    [ -d "/proc/$pid" ] || break
    sleep 0.05
  done
  running "$dir" "$name" || die "$name did not start (log: $dir/logs/$name.out)"
}

# stop_proc DIR NAME SIGNAL: signal a daemon and wait until it is gone
stop_proc() {
  local dir=$1 name=$2 sig=$3 pid i
  running "$dir" "$name" || { rm -f "$(pidfile "$dir" "$name")"; return 0; }
  pid=$(cat "$(pidfile "$dir" "$name")")
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do
    [ -d "/proc/$pid" ] || break
    # a zombie of ours counts as gone
    grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$(pidfile "$dir" "$name")"
}

# --- ports and configuration ------------------------------------------------------

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_ports: NN rpc, NN http, then dfs.datanode.{address,http.address,ipc.address}
# for each DataNode; free now and distinct. They are taken seconds later, when the
# JVMs are up, so they lie below Linux's ephemeral range (32768-60999 by default),
# where no outgoing connection can take one in between.
pick_ports() {
  local p=${AURUM_HDFS_BASE_PORT:-29100} n=0 want=$((2 + 3 * 2))
  local picked=()
  while [ "$n" -lt "$want" ]; do
    [ "$p" -lt 65000 ] || die "no free ports found"
    if port_free "$p"; then picked+=("$p"); n=$((n + 1)); fi
    p=$((p + 1))
  done
  echo "${picked[@]}"
}

prop() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }

write_core_site() {
  local file=$1 nn_rpc=$2 tmp=$3
  {
    echo '<?xml version="1.0"?>'
    echo '<!-- written by testenv/hdfs.sh -->'
    echo '<configuration>'
    prop fs.defaultFS "hdfs://127.0.0.1:$nn_rpc"
    prop hadoop.tmp.dir "$tmp"
    prop hadoop.security.authentication simple
    prop hadoop.security.authorization false
    prop ipc.client.connect.max.retries 3
    prop ipc.client.connect.retry.interval 500
    echo '</configuration>'
  } > "$file"
}

# hdfs-site.xml common to everyone, plus DataNode-specific lines on stdin
write_hdfs_site() {
  local file=$1 dir=$2 nn_rpc=$3 nn_http=$4
  {
    echo '<?xml version="1.0"?>'
    echo '<!-- written by testenv/hdfs.sh -->'
    echo '<configuration>'
    prop dfs.namenode.rpc-address "127.0.0.1:$nn_rpc"
    prop dfs.namenode.http-address "127.0.0.1:$nn_http"
    prop dfs.namenode.https-address "127.0.0.1:0"
    prop dfs.namenode.secondary.http-address "127.0.0.1:0"
    prop dfs.namenode.secondary.https-address "127.0.0.1:0"
    prop dfs.namenode.name.dir "file://$dir/data/name"
    prop dfs.replication 2
    prop dfs.namenode.replication.min 1
    # A close may complete while the last block is committed (every DataNode
    # of the pipeline acknowledged it) but not yet reported to the NameNode;
    # otherwise each file close waits 0.5 s or more in the client's retry loop.
    prop dfs.namenode.file.close.num-committed-allowed 1
    prop dfs.blocksize "$blocksize"
    prop dfs.permissions.enabled true
    prop dfs.permissions.superusergroup supergroup
    prop dfs.namenode.acls.enabled true
    prop dfs.namenode.datanode.registration.ip-hostname-check false
    prop dfs.namenode.safemode.extension 0
    prop dfs.namenode.safemode.min.datanodes 0
    prop dfs.namenode.resource.du.reserved 0
    prop dfs.heartbeat.interval 1
    prop dfs.namenode.heartbeat.recheck-interval 2500
    prop dfs.namenode.stale.datanode.interval 3000
    prop dfs.namenode.avoid.read.stale.datanode true
    prop dfs.namenode.avoid.write.stale.datanode true
    prop dfs.namenode.handler.count 20
    prop dfs.client.block.write.replace-datanode-on-failure.best-effort true
    prop dfs.datanode.hostname 127.0.0.1
    prop dfs.datanode.du.reserved 0
    prop dfs.datanode.fsdatasetcache.max.threads.per.volume 1
    prop dfs.webhdfs.enabled true
    cat
    echo '</configuration>'
  } > "$file"
}

log4j_props() {
  cat <<'EOF'
# written by testenv/hdfs.sh: everything to the daemon's .out file
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.hdfs.StateChange=WARN
log4j.logger.BlockStateChange=WARN
log4j.logger.org.apache.hadoop.hdfs.server.datanode.DataNode.clienttrace=WARN
log4j.logger.org.eclipse.jetty=WARN
EOF
}

client_log4j_props() {
  cat <<'EOF'
log4j.rootLogger=WARN,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF
}

write_conf() {
  local dir=$1 nn_rpc nn_http d1a d1h d1i d2a d2h d2i
  read -r nn_rpc nn_http d1a d1h d1i d2a d2h d2i < "$dir/ports"
  mkdir -p "$dir/conf"
  write_core_site "$dir/conf/core-site.xml" "$nn_rpc" "$dir/data/tmp"
  write_hdfs_site "$dir/conf/hdfs-site.xml" "$dir" "$nn_rpc" "$nn_http" </dev/null
  client_log4j_props > "$dir/conf/log4j.properties"
  mkdir -p "$dir/nn/conf"
  cp "$dir/conf/core-site.xml" "$dir/conf/hdfs-site.xml" "$dir/nn/conf/"
  log4j_props > "$dir/nn/conf/log4j.properties"
  local n a h i
  for n in $datanodes; do
    if [ "$n" = 1 ]; then a=$d1a h=$d1h i=$d1i; else a=$d2a h=$d2h i=$d2i; fi
    mkdir -p "$dir/dn$n/conf"
    write_core_site "$dir/dn$n/conf/core-site.xml" "$nn_rpc" "$dir/data/tmp-dn$n"
    write_hdfs_site "$dir/dn$n/conf/hdfs-site.xml" "$dir" "$nn_rpc" "$nn_http" <<EOF
$(prop dfs.datanode.data.dir "file://$dir/data/dn$n")
$(prop dfs.datanode.address "127.0.0.1:$a")
$(prop dfs.datanode.http.address "127.0.0.1:$h")
$(prop dfs.datanode.ipc.address "127.0.0.1:$i")
$(prop dfs.datanode.https.address "127.0.0.1:0")
EOF
    log4j_props > "$dir/dn$n/conf/log4j.properties"
  done
}

# --- readiness (through the NameNode's JMX servlet: no extra JVM) -----------------

nn_http() { read -r _ p _ < "$1/ports"; echo "$p"; }
nn_rpc() { read -r p _ < "$1/ports"; echo "$p"; }

jmx() { curl -fsS --max-time 3 "http://127.0.0.1:$1/jmx?qry=$2" 2>/dev/null; }

# jmx_field JSON KEY: the value of "KEY" : <number or "string">
jmx_field() {
  sed -n "s/.*\"$2\" *: *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" <<< "$1" | head -n 1
}

tail_logs() {
  local f
  for f in "$1"/logs/*.out; do
    [ -f "$f" ] || continue
    echo "--- $f (last lines)" >&2
    grep -v 'classpath = ' "$f" | tail -n 15 >&2
  done
}

# wait_cluster DIR LIVE TIMEOUT: NameNode operational (out of safe mode) with LIVE DataNodes
wait_cluster() {
  local dir=$1 want=$2 timeout=$3 port state live j start=$SECONDS
  port=$(nn_http "$dir")
  while :; do
    running "$dir" namenode || { tail_logs "$dir"; die "the NameNode exited (log: $dir/logs/namenode.out)"; }
    j=$(jmx "$port" 'Hadoop:service=NameNode,name=FSNamesystemState' || true)
    state=$(jmx_field "$j" FSState)
    live=$(jmx_field "$j" NumLiveDataNodes)
    if [ "$state" = Operational ] && [ "${live:-0}" -ge "$want" ]; then return 0; fi
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      tail_logs "$dir"
      die "HDFS not ready after ${timeout}s (state=${state:-none}, live DataNodes=${live:-?} of $want; logs: $dir/logs)"
    fi
    sleep 0.5
  done
}

# wait_datanode DIR N TIMEOUT: DataNode N registered and heartbeating
wait_datanode() {
  local dir=$1 n=$2 timeout=$3 port j start=$SECONDS d1h d2h
  read -r _ _ _ d1h _ _ d2h _ < "$dir/ports"
  if [ "$n" = 1 ]; then port=$d1h; else port=$d2h; fi
  while :; do
    running "$dir" "datanode$n" || { grep -v 'classpath = ' "$dir/logs/datanode$n.out" | tail -n 30 >&2; die "DataNode $n exited (log: $dir/logs/datanode$n.out)"; }
    j=$(jmx "$port" 'Hadoop:service=DataNode,name=DataNodeInfo' || true)
    # BPServiceActorInfo is a JSON string inside the JSON; RUNNING once registered
    if grep -q 'ActorState[^A-Z]*RUNNING' <<< "$j"; then return 0; fi
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      grep -v 'classpath = ' "$dir/logs/datanode$n.out" | tail -n 30 >&2
      die "DataNode $n did not register within ${timeout}s (log: $dir/logs/datanode$n.out)"
    fi
    sleep 0.5
  done
}

# webhdfs DIR METHOD PATH OP QUERY: one WebHDFS call as the superuser
webhdfs() {
  local out
  if ! out=$(curl -sS --max-time 20 -X "$2" -w '\n%{http_code}' \
      "http://127.0.0.1:$(nn_http "$1")/webhdfs/v1$3?op=$4&user.name=$hdfs_user&$5" 2>&1) ||
      [ "$(tail -n 1 <<< "$out")" != 200 ]; then
    log "WebHDFS $4 $3 failed: $out"
    return 1
  fi
}

# format_namenode DIR: a freshly formatted name dir. Formatting takes a JVM start,
# so it is done once into the cache and copied; every cluster gets the same
# cluster and block pool IDs, which is harmless as their DataNodes start empty.
format_namenode() {
  local dir=$1 tmpl=$cache/hdfs/name-template
  if [ ! -f "$tmpl/.aurum-pom-sha256" ] || ! cmp -s "$tmpl/.aurum-pom-sha256" "$lib/.aurum-pom-sha256"; then
    log "formatting a NameNode image (once, cached in $tmpl)"
    rm -rf "$tmpl" "$tmpl.new"
    mkdir -p "$tmpl.new/conf"
    write_core_site "$tmpl.new/conf/core-site.xml" 8020 "$tmpl.new/tmp"
    write_hdfs_site "$tmpl.new/conf/hdfs-site.xml" "$tmpl.new" 8020 0 </dev/null
    log4j_props > "$tmpl.new/conf/log4j.properties"
    # shellcheck disable=SC2046
    if ! HADOOP_USER_NAME=$hdfs_user "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -XX:-UsePerfData -Dhadoop.log.dir="$dir/logs" -cp "$tmpl.new/conf:$lib/*" \
        org.apache.hadoop.hdfs.server.namenode.NameNode \
        -format -clusterid aurum-test -force -nonInteractive >"$dir/logs/format.out" 2>&1 9>&-; then
      grep -v 'classpath = ' "$dir/logs/format.out" | tail -n 30 >&2
      die "formatting the NameNode failed (log: $dir/logs/format.out)"
    fi
    cp "$lib/.aurum-pom-sha256" "$tmpl.new/data/name/"
    mv "$tmpl.new/data/name" "$tmpl"
    rm -rf "$tmpl.new"
  fi
  rm -rf "$dir/data/name"
  cp -a "$tmpl" "$dir/data/name"
  rm -f "$dir/data/name/.aurum-pom-sha256"
}

# --- commands ---------------------------------------------------------------------

print_env() {
  local dir=$1
  [ -f "$dir/ports" ] || die "no cluster in $dir (run: testenv/hdfs.sh start $dir)"
  echo "HADOOP_CONF_DIR=$dir/conf"
  echo "AURUM_HDFS_URL=hdfs://127.0.0.1:$(nn_rpc "$dir")"
}

absdir() { mkdir -p "$1" && (cd "$1" && pwd); }

start_datanode_proc() {
  local dir=$1 n=$2
  running "$dir" "datanode$n" && return 0
  launch "$dir" "datanode$n" "$dir/dn$n/conf" 256m org.apache.hadoop.hdfs.server.datanode.DataNode
}

start() {
  local dir
  dir=$(absdir "$1")
  # one start at a time per cache: no two Maven runs, no two clusters picking the same ports
  mkdir -p "$cache/hdfs"
  exec 9>"$cache/hdfs/.start.lock"
  flock 9
  ensure_jars
  ensure_webapps
  if running "$dir" namenode; then
    local n
    for n in $datanodes; do
      if ! running "$dir" "datanode$n"; then
        start_datanode_proc "$dir" "$n"
        wait_datanode "$dir" "$n" 120
      fi
    done
    wait_cluster "$dir" 2 120
    log "already running"
    print_env "$dir"
    return 0
  fi
  # not (fully) running: whatever is left goes, and the cluster starts afresh
  local n
  for n in $datanodes; do stop_proc "$dir" "datanode$n" KILL; done
  rm -rf "$dir/data" "$dir/logs" "$dir/run" "$dir/conf" "$dir/nn" "$dir/dn1" "$dir/dn2" "$dir/ports"
  mkdir -p "$dir/data" "$dir/logs" "$dir/run"
  pick_ports > "$dir/ports"
  write_conf "$dir"

  format_namenode "$dir"
  launch "$dir" namenode "$dir/nn/conf" 512m org.apache.hadoop.hdfs.server.namenode.NameNode
  for n in $datanodes; do start_datanode_proc "$dir" "$n"; done
  wait_cluster "$dir" 2 180

  # /aurum belongs to the client user; / stays the superuser's; /tmp is 1777.
  # Through WebHDFS on the NameNode's HTTP port: no client JVM to start.
  webhdfs "$dir" PUT /aurum MKDIRS "permission=755" &&
    webhdfs "$dir" PUT /aurum SETOWNER "owner=$client_user&group=supergroup" &&
    webhdfs "$dir" PUT /tmp MKDIRS "permission=1777" &&
    webhdfs "$dir" PUT /tmp SETPERMISSION "permission=1777" ||
    die "could not create /aurum and /tmp (log: $dir/logs/namenode.out)"

  log "started: NameNode hdfs://127.0.0.1:$(nn_rpc "$dir") (web http://127.0.0.1:$(nn_http "$dir")), 2 DataNodes, /aurum owned by $client_user (logs: $dir/logs)"
  print_env "$dir"
}

stop() {
  local dir=$1 n
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  for n in $datanodes; do stop_proc "$dir" "datanode$n" TERM; done
  stop_proc "$dir" namenode TERM
  log "stopped"
}

check_n() {
  case "$1" in 1|2) ;; *) echo "hdfs.sh: DataNode number must be 1 or 2, not '$1'" >&2; exit 2 ;; esac
}

kill_datanode() {
  local dir=$1 n=$2
  check_n "$n"
  dir=$(cd "$dir" && pwd)
  if running "$dir" "datanode$n"; then
    stop_proc "$dir" "datanode$n" KILL
    log "killed DataNode $n"
  else
    log "DataNode $n was not running"
  fi
}

start_datanode() {
  local dir=$1 n=$2
  check_n "$n"
  dir=$(cd "$dir" && pwd)
  running "$dir" namenode || die "the NameNode in $dir is not running (start the cluster first)"
  start_datanode_proc "$dir" "$n"
  wait_datanode "$dir" "$n" 120
  log "DataNode $n is up"
}

wait_datanode_dead() {
  local dir=$1 n=$2 port xfer j last start=$SECONDS timeout=120
  check_n "$n"
  dir=$(cd "$dir" && pwd)
  running "$dir" namenode || die "the NameNode in $dir is not running"
  port=$(nn_http "$dir")
  read -r _ _ d1a _ _ d2a _ _ < "$dir/ports"
  if [ "$n" = 1 ]; then xfer=$d1a; else xfer=$d2a; fi
  while :; do
    j=$(jmx "$port" 'Hadoop:service=NameNode,name=NameNodeInfo' || true)
    # DeadNodes (a JSON object as a string, keyed by transfer address) is computed
    # from the last heartbeat on the fly, but block placement only stops offering
    # the node once the heartbeat monitor (every 5 s) has removed it from the
    # topology, which the NameNode logs: wait for both.
    last=$(grep -F 'net.NetworkTopology' "$dir/logs/namenode.out" | grep -F "/127.0.0.1:$xfer" | tail -n 1)
    if grep '"DeadNodes"' <<< "$j" | grep -qF "127.0.0.1:$xfer" &&
        [[ $last == *"Removing a node"* ]]; then
      log "the NameNode has removed DataNode $n as dead ($((SECONDS - start)) s)"
      return 0
    fi
    [ $((SECONDS - start)) -lt "$timeout" ] || die "DataNode $n not declared dead within ${timeout}s"
    sleep 0.5
  done
}

jars() {
  mkdir -p "$cache/hdfs"
  exec 9>"$cache/hdfs/.start.lock"
  flock 9
  ensure_jars
  ensure_webapps
  echo "AURUM_HDFS_LIB=$lib"
  echo "AURUM_HDFS_WEB=$web"
}

usage() {
  echo "usage: testenv/hdfs.sh start|stop|env DIR | kill-datanode|start-datanode|wait-datanode-dead DIR N | jars" >&2
  exit 2
}

cmd=${1:-}
case "$cmd" in
  start|stop|env) [ $# -eq 2 ] || usage ;;
  jars) [ $# -eq 1 ] || usage ;;
  kill-datanode|start-datanode|wait-datanode-dead) [ $# -eq 3 ] || usage ;;
  *) usage ;;
esac
case "$cmd" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  env) print_env "$(cd "$2" && pwd)" ;;
  jars) jars ;;
  kill-datanode) kill_datanode "$2" "$3" ;;
  start-datanode) start_datanode "$2" "$3" ;;
  wait-datanode-dead) wait_datanode_dead "$2" "$3" ;;
esac
