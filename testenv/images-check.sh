#!/usr/bin/env bash
# Checks the OCI archives scripts/images.sh wrote, without a kubelet: each image
# is unpacked with umoci and run with runc (own PID, mount, network namespaces,
# read-only root, no capabilities, the image's user), the way the chart runs it.
#
#   testenv/images-check.sh [DIR]   the archives in DIR/oci (default
#                                   ~/.cache/aurum/images/oci, what
#                                   `make images` / `make test-images` wrote)
#
# Aurum images: the config (User 65532:65532, Entrypoint the binary, no shell in
# the entrypoint), `<binary> --help` run as 65532, and for the job-runner the
# source loader's init container (`cp -r /usr/share/aurum/source/. /work/source/`).
# Test PostgreSQL: the chart's env and `-c port=5432`, PGDATA on a fresh volume,
# pg_isready, psql over TCP with the password (and refused with a wrong one), a
# restart on the same volume keeps the data. Test Hadoop: the chart's NameNode
# command (format, then run), a DataNode, then the source loader's script
# (`hdfs dfs -mkdir -p / -put -f / -ls`) with the job-runner image's CSVs.
# The commands are those of charts/aurum/templates (postgresql.yaml, hdfs.yaml,
# source-loader-job.yaml), copied here; the configuration is the chart's
# ConfigMap with 127.0.0.1 for the NameNode's Service name.
#
# Prints `ok ...` lines on stderr and exits non-zero at the first failure.
# Everything runs in namespaces of its own: the containers' traffic stays on
# their loopback. Needs runc, umoci, skopeo, jq (Debian packages).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${AURUM_CACHE:-$HOME/.cache/aurum}/images}
oci=$dir/oci
[ -d "$oci" ] || { echo "images-check.sh: no $oci (run make images first)" >&2; exit 1; }
oci=$(cd "$oci" && pwd)

log() { echo "images-check.sh: $*" >&2; }
ok() { echo "ok   $*" >&2; }
fail() { echo "FAIL $*" >&2; exit 1; }

for t in runc umoci skopeo jq; do
  command -v "$t" >/dev/null || fail "$t not found (apt-get install $t)"
done

work=$(mktemp -d /tmp/aurum-images-check.XXXXXX)
runc_root=$work/runc
# As a kubelet writes it: the pod's host name resolves to its own address.
printf '127.0.0.1\tlocalhost\n127.0.0.1\tcheck\n' > "$work/hosts"
started=()
cleanup() {
  local id
  for id in "${started[@]}"; do
    runc --root "$runc_root" kill "$id" KILL >/dev/null 2>&1 || true
  done
  sleep 0.5
  for id in "${started[@]}"; do
    runc --root "$runc_root" delete -f "$id" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# archive NAME: the archive of image NAME (e.g. aurum-api), any tag
archive() {
  local a
  a=$(ls "$oci"/"$1"-*.tar 2>/dev/null | head -n 1)
  [ -n "$a" ] && echo "$a"
}

# unpack ARCHIVE NAME: DIR/NAME/bundle (rootfs + config.json from the image config)
unpack() {
  local a=$1 name=$2
  mkdir -p "$work/$name"
  skopeo copy -q "oci-archive:$a" "oci:$work/$name/layout:img" >/dev/null
  umoci unpack --image "$work/$name/layout:img" "$work/$name/bundle" >/dev/null
  rm -rf "$work/$name/layout"
  echo "$work/$name/bundle"
}

# spec BUNDLE NEWBUNDLE JQ-FILTER [jq args...]: a copy of the bundle's config.json
# edited for one container (sharing the rootfs, which is read-only)
spec() {
  local b=$1 nb=$2 filter=$3
  shift 3
  mkdir -p "$nb"
  # As the chart's securityContext: read-only root, every capability dropped,
  # no privilege escalation; stdio to files, no terminal.
  jq --arg rootfs "$b/rootfs" --arg hosts "$work/hosts" "$@" '.root = {path: $rootfs, readonly: true}
    | .process.terminal = false
    | .process.capabilities = {bounding: [], effective: [], inheritable: [], permitted: [], ambient: []}
    | .process.noNewPrivileges = true
    | .hostname = "check"
    | .mounts += [{destination: "/etc/hosts", type: "bind", source: $hosts, options: ["rbind", "ro"]}]
    | '"$filter" "$b/config.json" > "$nb/config.json"
}

# mount entries for jq: a bind mount and a tmpfs
bind_json() { jq -cn --arg s "$1" --arg d "$2" --arg o "${3:-rw}" '{destination: $d, type: "bind", source: $s, options: ["rbind", $o]}'; }
tmpfs_json() { jq -cn --arg d "$1" '{destination: $d, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"]}'; }

# run_fg BUNDLE ID: run to completion; stdout to BUNDLE/out, stderr to BUNDLE/err
run_fg() {
  local nb=$1 id=$2 rc=0
  started+=("$id")
  runc --root "$runc_root" run --bundle "$nb" "$id" </dev/null >"$nb/out" 2>"$nb/err" || rc=$?
  runc --root "$runc_root" delete -f "$id" >/dev/null 2>&1 || true
  return "$rc"
}

# run_bg BUNDLE ID: start detached (output to BUNDLE/out, BUNDLE/err); prints the pid
run_bg() {
  local nb=$1 id=$2
  started+=("$id")
  runc --root "$runc_root" run -d --pid-file "$nb/pid" --bundle "$nb" "$id" \
    </dev/null >"$nb/out" 2>"$nb/err" || { cat "$nb/err" >&2; fail "runc run $id failed"; }
  cat "$nb/pid"
}

# a volume as a kubelet makes one with fsGroup G: root-owned, group G, setgid, g+rwx
volume() { mkdir -p "$1"; chown 0:"$2" "$1"; chmod 2775 "$1"; }

config() { skopeo inspect --config "oci-archive:$1" | jq -c "$2"; }

# --- the four Aurum images -------------------------------------------------------

check_aurum() {
  local c=$1 a b nb cfg
  a=$(archive "aurum-$c") || { log "no aurum-$c archive in $oci: skipped"; return 0; }
  cfg=$(config "$a" '.config')
  [ "$(jq -r .User <<< "$cfg")" = "65532:65532" ] || fail "aurum-$c: User is $(jq -r .User <<< "$cfg"), not 65532:65532"
  [ "$(jq -c .Entrypoint <<< "$cfg")" = "[\"aurum-$c\"]" ] || fail "aurum-$c: Entrypoint is $(jq -c .Entrypoint <<< "$cfg")"
  ok "aurum-$c: config User 65532:65532, Entrypoint [\"aurum-$c\"], Cmd $(jq -c .Cmd <<< "$cfg"), Env $(jq -c .Env <<< "$cfg")"
  b=$(unpack "$a" "aurum-$c")
  [ "$(stat -c %u:%g "$b/rootfs/usr/local/bin/aurum-$c")" = 0:0 ] && [ -x "$b/rootfs/usr/local/bin/aurum-$c" ] ||
    fail "aurum-$c: /usr/local/bin/aurum-$c missing or not root-owned"
  nb=$work/aurum-$c/help
  spec "$b" "$nb" '.process.args = [.process.args[0], "--help"] | .mounts += [$tmp]' \
    --argjson tmp "$(tmpfs_json /tmp)"
  run_fg "$nb" "check-$c-help" || { cat "$nb/err" >&2; fail "aurum-$c --help failed"; }
  grep -qi "usage" "$nb/out" || fail "aurum-$c --help printed no usage: $(head -c 300 "$nb/out")"
  [ "$(jq -c '.process.user' "$nb/config.json")" = '{"uid":65532,"gid":65532}' ] || fail "aurum-$c: not run as 65532"
  ok "aurum-$c: \`aurum-$c --help\` as uid 65532 on a read-only root: $(head -n 1 "$nb/out")"
  if [ "$c" = api ]; then
    # api-deployment.yaml's users-file init container: /bin/sh and the binary.
    mkdir -p "$work/api-admin" "$work/api-users"
    printf 'check-admin-password' > "$work/api-admin/password"
    chmod 0644 "$work/api-admin/password"
    volume "$work/api-users" 65532
    nb=$work/aurum-$c/users-file
    spec "$b" "$nb" '.process.args = ["/bin/sh", "-ec", "aurum-api hash-password --username \"$ADMIN_USERNAME\" --role admin < /etc/aurum/admin/password > /var/run/aurum/users/users"]
      | .process.user = {uid: 65532, gid: 65532, additionalGids: [65532]}
      | .process.env += ["ADMIN_USERNAME=admin"]
      | .mounts += [$admin, $users, $tmp]' \
      --argjson admin "$(bind_json "$work/api-admin" /etc/aurum/admin ro)" \
      --argjson users "$(bind_json "$work/api-users" /var/run/aurum/users)" \
      --argjson tmp "$(tmpfs_json /tmp)"
    run_fg "$nb" "check-users-file" || { cat "$nb/err" >&2; fail "the API's users-file init container failed"; }
    grep -q '^admin:\$argon2id\$.*:admin$' "$work/api-users/users" ||
      fail "the users file is not 'admin:<argon2id hash>:admin': $(cut -c1-40 "$work/api-users/users")"
    ok "aurum-api: the chart's users-file init container (/bin/sh -ec 'aurum-api hash-password ...') wrote admin:\$argon2id...:admin"
  fi
  if [ "$c" = job-runner ]; then
    # The quickstart source loader's init container (source-loader-job.yaml).
    volume "$work/loader-source" 1000
    nb=$work/aurum-$c/copy
    spec "$b" "$nb" '.process.args = ["cp", "-r", "/usr/share/aurum/source/.", "/work/source/"]
      | .process.user = {uid: 65532, gid: 65532, additionalGids: [1000]}
      | .mounts += [$src]' --argjson src "$(bind_json "$work/loader-source" /work/source)"
    run_fg "$nb" "check-copy-source" || { cat "$nb/err" >&2; fail "the source loader's cp failed"; }
    [ "$(ls "$work/loader-source"/*.csv | wc -l)" -ge 1 ] || fail "no CSVs copied out of the job-runner image"
    ok "aurum-job-runner: the source loader's cp copied $(ls "$work/loader-source" | tr '\n' ' ')"
  fi
}

# --- PostgreSQL --------------------------------------------------------------------

pg_exec() { runc --root "$runc_root" exec "$@"; }

check_postgres() {
  local a b nb pid i password=check-$RANDOM-secret
  a=$(archive aurum-test-postgres) || { log "no aurum-test-postgres archive in $oci: skipped"; return 0; }
  local cfg
  cfg=$(config "$a" '.config')
  [ "$(jq -r .User <<< "$cfg")" = "999:999" ] || fail "test-postgres: User is not 999:999"
  b=$(unpack "$a" postgres)
  volume "$work/pgvolume" 999
  nb=$work/postgres/run
  # postgresql.yaml: args, env, mounts (data volume, /var/run/postgresql, /tmp), uid 999 + fsGroup 999.
  spec "$b" "$nb" '.process.args = .process.args[0:1] + ["-c", "port=5432"]
    | .process.user = {uid: 999, gid: 999, additionalGids: [999]}
    | .process.env += ["POSTGRES_USER=aurum", "POSTGRES_DB=aurum", "POSTGRES_PASSWORD=" + $pw, "PGDATA=/var/lib/postgresql/data/pgdata"]
    | .mounts += [$data, $run, $tmp]' --arg pw "$password" \
    --argjson data "$(bind_json "$work/pgvolume" /var/lib/postgresql/data)" \
    --argjson run "$(tmpfs_json /var/run/postgresql)" --argjson tmp "$(tmpfs_json /tmp)"
  local round
  for round in first restart; do
    pid=$(run_bg "$nb" "check-postgres-$round")
    # the chart's readiness probe
    for i in $(seq 1 120); do
      pg_exec check-postgres-$round pg_isready -h 127.0.0.1 -p 5432 -U aurum -d aurum >/dev/null 2>&1 && break
      kill -0 "$pid" 2>/dev/null || { cat "$nb/err" >&2; fail "postgres exited ($round start)"; }
      sleep 0.5
    done
    pg_exec check-postgres-$round pg_isready -h 127.0.0.1 -p 5432 -U aurum -d aurum >/dev/null ||
      { cat "$nb/err" >&2; fail "pg_isready never succeeded ($round start)"; }
    ok "test-postgres ($round start): pg_isready -h 127.0.0.1 -p 5432 -U aurum -d aurum after $((i / 2)) s"
    # psql over TCP from outside the container (the host's psql in its network
    # namespace, else the image's), with the password.
    local psql=(runc --root "$runc_root" exec --env "PGPASSWORD=$password" "check-postgres-$round" psql)
    local psql_bad=(runc --root "$runc_root" exec --env "PGPASSWORD=wrong" "check-postgres-$round" psql)
    if command -v psql >/dev/null; then
      psql=(env "PGPASSWORD=$password" nsenter --net="/proc/$pid/ns/net" psql)
      psql_bad=(env PGPASSWORD=wrong nsenter --net="/proc/$pid/ns/net" psql)
    fi
    local url="host=127.0.0.1 port=5432 user=aurum dbname=aurum sslmode=disable"
    if [ "$round" = first ]; then
      "${psql[@]}" -X -q -v ON_ERROR_STOP=1 "$url" -c 'CREATE TABLE check_table (v text)' \
        -c "INSERT INTO check_table VALUES ('kept')" >/dev/null 2>"$work/psql.err" ||
        { cat "$work/psql.err" "$nb/err" >&2; fail "psql over TCP with the password failed"; }
      ok "test-postgres: psql over TCP as aurum (scram-sha-256) created a table in database aurum"
      if "${psql_bad[@]}" -X -q "$url" -c 'SELECT 1' >/dev/null 2>"$work/psql.err"; then
        fail "psql with a wrong password was let in"
      fi
      grep -q "password authentication failed" "$work/psql.err" || fail "wrong password: $(cat "$work/psql.err")"
      ok "test-postgres: a wrong password is refused ($(head -n 1 "$work/psql.err" | cut -c1-90))"
      [ "$(stat -c %a "$work/pgvolume/pgdata")" = 700 ] || fail "PGDATA mode is $(stat -c %a "$work/pgvolume/pgdata")"
      [ "$(stat -c %u "$work/pgvolume/pgdata/PG_VERSION")" = 999 ] || fail "PGDATA not owned by 999"
      ok "test-postgres: PGDATA=/var/lib/postgresql/data/pgdata initialised by uid 999, mode 700, PostgreSQL $(cat "$work/pgvolume/pgdata/PG_VERSION")"
      runc --root "$runc_root" kill "check-postgres-$round" INT
    else
      local v
      v=$("${psql[@]}" -X -qtA "$url" -c 'SELECT v FROM check_table') || fail "psql after the restart failed"
      [ "$v" = kept ] || fail "after a restart on the same volume the data is gone ('$v')"
      grep -q "initialising" "$nb/err" && fail "the restart initialised PGDATA again"
      ok "test-postgres: a restart on the same volume keeps the data, no second initdb"
      runc --root "$runc_root" kill "check-postgres-$round" INT
    fi
    for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && fail "postgres did not stop on SIGINT"
    runc --root "$runc_root" delete -f "check-postgres-$round" >/dev/null 2>&1 || true
  done
  ok "test-postgres: stops on SIGINT (the image's StopSignal)"
}

# --- Hadoop --------------------------------------------------------------------------

hadoop_conf() {
  local conf=$1
  mkdir -p "$conf"
  # hdfs.yaml's ConfigMap, with 127.0.0.1 for <fullname>-hdfs-namenode.
  cat > "$conf/core-site.xml" <<'EOF'
<?xml version="1.0"?>
<configuration>
  <property><name>fs.defaultFS</name><value>hdfs://127.0.0.1:8020</value></property>
  <property><name>hadoop.tmp.dir</name><value>/tmp/hadoop</value></property>
</configuration>
EOF
  cat > "$conf/hdfs-site.xml" <<'EOF'
<?xml version="1.0"?>
<configuration>
  <property><name>dfs.replication</name><value>1</value></property>
  <property><name>dfs.permissions.enabled</name><value>false</value></property>
  <property><name>dfs.namenode.name.dir</name><value>file:///data/name</value></property>
  <property><name>dfs.datanode.data.dir</name><value>file:///data/data</value></property>
  <property><name>dfs.namenode.rpc-bind-host</name><value>0.0.0.0</value></property>
  <property><name>dfs.namenode.servicerpc-bind-host</name><value>0.0.0.0</value></property>
  <property><name>dfs.namenode.http-bind-host</name><value>0.0.0.0</value></property>
  <property><name>dfs.namenode.http-address</name><value>127.0.0.1:9870</value></property>
  <property><name>dfs.namenode.datanode.registration.ip-hostname-check</name><value>false</value></property>
  <property><name>dfs.client.use.datanode.hostname</name><value>false</value></property>
  <property><name>dfs.datanode.use.datanode.hostname</name><value>false</value></property>
</configuration>
EOF
  cat > "$conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
EOF
}

check_hadoop() {
  local a b nb nn_pid i
  a=$(archive aurum-test-hadoop) || { log "no aurum-test-hadoop archive in $oci: skipped"; return 0; }
  [ "$(config "$a" '.config.User' | tr -d '"')" = "1000:1000" ] || fail "test-hadoop: User is not 1000:1000"
  b=$(unpack "$a" hadoop)
  hadoop_conf "$work/hadoop-conf"
  volume "$work/nn-data" 1000
  volume "$work/dn-data" 1000
  local common='.process.user = {uid: 1000, gid: 1000, additionalGids: [1000]}
    | .process.env += ["HADOOP_CONF_DIR=/etc/hadoop/conf", "HADOOP_LOG_DIR=/tmp/logs"]'
  local conf_m data_m tmp_m
  conf_m=$(bind_json "$work/hadoop-conf" /etc/hadoop/conf ro)
  tmp_m=$(tmpfs_json /tmp)

  # hdfs.yaml, the NameNode container
  nb=$work/hadoop/namenode
  data_m=$(bind_json "$work/nn-data" /data)
  spec "$b" "$nb" "$common"' | .process.args = ["/bin/bash", "-ec", $cmd]
    | .process.env += ["HDFS_NAMENODE_OPTS=-Xmx384m"]
    | .mounts += [$conf, $data, $tmp]' \
    --arg cmd 'if [ ! -f /data/name/current/VERSION ]; then
  /opt/hadoop/bin/hdfs namenode -format -force -nonInteractive
fi
exec /opt/hadoop/bin/hdfs namenode' \
    --argjson conf "$conf_m" --argjson data "$data_m" --argjson tmp "$tmp_m"
  local t0=$SECONDS
  nn_pid=$(run_bg "$nb" check-namenode)
  for i in $(seq 1 240); do
    nsenter --net="/proc/$nn_pid/ns/net" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8020' 2>/dev/null && break
    kill -0 "$nn_pid" 2>/dev/null || { tail -n 30 "$nb/err" >&2; fail "the NameNode exited"; }
    sleep 0.5
  done
  [ -f "$work/nn-data/name/current/VERSION" ] || fail "the NameNode was not formatted into /data/name"
  grep -q "Xmx384m" "/proc/$nn_pid/cmdline" || fail "HDFS_NAMENODE_OPTS did not reach the JVM"
  ok "test-hadoop: NameNode formatted (hdfs namenode -format -force -nonInteractive) and listening on 8020 after $((SECONDS - t0)) s, -Xmx384m from HDFS_NAMENODE_OPTS"

  # hdfs.yaml, the DataNode container (the NameNode's network namespace: one pod network)
  nb=$work/hadoop/datanode
  data_m=$(bind_json "$work/dn-data" /data)
  spec "$b" "$nb" "$common"' | .process.args = ["/bin/bash", "-ec", "exec /opt/hadoop/bin/hdfs datanode"]
    | .process.env += ["HDFS_DATANODE_OPTS=-Xmx256m"]
    | .linux.namespaces |= map(if .type == "network" then .path = $netns else . end)
    | .mounts += [$conf, $data, $tmp]' --arg netns "/proc/$nn_pid/ns/net" \
    --argjson conf "$conf_m" --argjson data "$data_m" --argjson tmp "$tmp_m"
  local dn_pid
  dn_pid=$(run_bg "$nb" check-datanode)
  sleep 1
  grep -q "Xmx256m" "/proc/$dn_pid/cmdline" || fail "HDFS_DATANODE_OPTS did not reach the JVM"
  ok "test-hadoop: DataNode started (hdfs datanode, -Xmx256m from HDFS_DATANODE_OPTS)"

  # source-loader-job.yaml, the load container, with the CSVs the job-runner's
  # cp left (or the repository's source/ when there is no job-runner image)
  local src=$work/loader-source
  if ! ls "$src"/*.csv >/dev/null 2>&1; then
    volume "$src" 1000
    cp "$repo"/source/*.csv "$src/"
  fi
  nb=$work/hadoop/loader
  spec "$b" "$nb" "$common"' | .process.args = ["/bin/bash", "-ec", $cmd]
    | .process.env += ["LANDING=/landing", "HDFS_URI=hdfs://127.0.0.1:8020"]
    | .linux.namespaces |= map(if .type == "network" then .path = $netns else . end)
    | .mounts += [$conf, $work, $tmp]' --arg netns "/proc/$nn_pid/ns/net" \
    --arg cmd 'hdfs=/opt/hadoop/bin/hdfs
deadline=$((SECONDS + 600))
until $hdfs dfs -mkdir -p "$LANDING" && $hdfs dfs -put -f /work/source/*.csv "$LANDING/"; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "source loader: HDFS at $HDFS_URI took no writes for 600 s; check the NameNode and DataNode pods" >&2
    exit 1
  fi
  echo "source loader: HDFS not writable yet, retrying in 10 s" >&2
  sleep 10
done
$hdfs dfs -ls "$LANDING"' \
    --argjson conf "$conf_m" --argjson work "$(bind_json "$src" /work/source ro)" --argjson tmp "$tmp_m"
  t0=$SECONDS
  run_fg "$nb" check-loader || { tail -n 30 "$nb/err" >&2; fail "the source loader failed"; }
  local f
  for f in "$src"/*.csv; do
    grep -q "/landing/$(basename "$f")\$" "$nb/out" || { cat "$nb/out" >&2; fail "hdfs dfs -ls /landing lacks $(basename "$f")"; }
  done
  ok "test-hadoop: the source loader's script put $(ls "$src"/*.csv | wc -l) CSVs into /landing in $((SECONDS - t0)) s; hdfs dfs -ls:"
  sed 's/^/       /' "$nb/out" >&2

  # the bytes came back: dfs -cat of one file equals the local one
  nb=$work/hadoop/cat
  f=$(ls "$src"/*.csv | head -n 1)
  spec "$b" "$nb" "$common"' | .process.args = ["/opt/hadoop/bin/hdfs", "dfs", "-cat", $path]
    | .linux.namespaces |= map(if .type == "network" then .path = $netns else . end)
    | .mounts += [$conf, $tmp]' --arg netns "/proc/$nn_pid/ns/net" --arg path "/landing/$(basename "$f")" \
    --argjson conf "$conf_m" --argjson tmp "$tmp_m"
  run_fg "$nb" check-cat || { tail -n 30 "$nb/err" >&2; fail "hdfs dfs -cat failed"; }
  cmp -s "$nb/out" "$f" || fail "hdfs dfs -cat /landing/$(basename "$f") differs from the file put"
  ok "test-hadoop: hdfs dfs -cat /landing/$(basename "$f") returns the bytes put ($(stat -c %s "$f") bytes)"

  # dfsadmin: one live DataNode
  nb=$work/hadoop/report
  spec "$b" "$nb" "$common"' | .process.args = ["/opt/hadoop/bin/hdfs", "dfsadmin", "-report"]
    | .linux.namespaces |= map(if .type == "network" then .path = $netns else . end)
    | .mounts += [$conf, $tmp]' --arg netns "/proc/$nn_pid/ns/net" \
    --argjson conf "$conf_m" --argjson tmp "$tmp_m"
  run_fg "$nb" check-report || { tail -n 30 "$nb/err" >&2; fail "hdfs dfsadmin -report failed"; }
  grep -q "Live datanodes (1)" "$nb/out" || { cat "$nb/out" >&2; fail "dfsadmin -report shows no live DataNode"; }
  ok "test-hadoop: hdfs dfsadmin -report: Live datanodes (1)"
}

t0=$SECONDS
for c in operator job-runner api dashboard; do check_aurum "$c"; done
check_postgres
check_hadoop
log "all checks passed in $((SECONDS - t0)) s"
