#!/usr/bin/env bash
# A throwaway Apache Ballista cluster on loopback, for the tests and the benchmark:
# one scheduler and two executors, each a process of the project's own binary
# (`aurum-job-runner ballista-scheduler` / `ballista-executor`, docs/ballista.md).
#
#   testenv/ballista.sh start DIR            start the scheduler and the executors
#                                            (a no-op for those already running) and
#                                            wait until all are registered; prints
#                                            AURUM_BALLISTA_URL=ballista://127.0.0.1:PORT
#                                            and AURUM_BALLISTA_PIDS=... on stdout
#   testenv/ballista.sh stop DIR             stop them all (SIGTERM, then SIGKILL)
#   testenv/ballista.sh env DIR              print the lines of `start` again
#   testenv/ballista.sh kill-executor DIR N  SIGKILL executor N, as a crash would
#   testenv/ballista.sh start-executor DIR N start executor N again and wait until
#                                            the scheduler counts it
#
# Environment: AURUM_JOB_RUNNER_BIN (default $CARGO_TARGET_DIR/debug/aurum-job-runner,
# CARGO_TARGET_DIR defaulting to ~/.cache/aurum/target; built by the caller),
# AURUM_BALLISTA_EXECUTORS (how many, default 2), AURUM_BALLISTA_CONCURRENT_TASKS
# (slots per executor, default the machine's cores), AURUM_BALLISTA_BASE_PORT
# (first port tried, default 29500). HADOOP_CONF_DIR, when set, reaches the
# executors as it reaches the job-runner.
#
# Ports: the scheduler's one (gRPC, and HTTP /healthz and /readyz on the same port),
# then per executor an Arrow Flight and a gRPC port; free at start, below Linux's
# ephemeral range. Executors heartbeat every 3 s and the scheduler takes one
# silent for 20 s as lost (its tasks then run again on the others).
#
# Layout: DIR/ports, DIR/run (pid files), DIR/logs (scheduler.log, executorN.log),
# DIR/executorN (shuffle files).
set -euo pipefail

log() { echo "ballista.sh: $*" >&2; }
die() { log "$*"; exit 1; }

target=${CARGO_TARGET_DIR:-$HOME/.cache/aurum/target}
bin=${AURUM_JOB_RUNNER_BIN:-$target/debug/aurum-job-runner}
executors=${AURUM_BALLISTA_EXECUTORS:-2}
slots=${AURUM_BALLISTA_CONCURRENT_TASKS:-$(nproc)}

pidfile() { echo "$1/run/$2.pid"; }

# running DIR NAME: the recorded pid is alive and is this DIR's process NAME
running() {
  local pid
  pid=$(cat "$(pidfile "$1" "$2")" 2>/dev/null) && [ -n "$pid" ] || return 1
  tr '\0' '\n' 2>/dev/null < "/proc/$pid/environ" | grep -qxF "AURUM_BALLISTA_ROLE=$1/$2"
}

# stop_proc DIR NAME SIGNAL: signal a process, give it 15 s to go (a zombie of
# ours counts as gone), then SIGKILL it
stop_proc() {
  local dir=$1 name=$2 sig=$3 pid
  if running "$dir" "$name"; then
    pid=$(cat "$(pidfile "$dir" "$name")")
    kill -"$sig" "$pid" 2>/dev/null || true
    timeout 15 bash -c "while [ -d /proc/$pid ] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; do sleep 0.1; done" ||
      kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$dir" "$name")"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_ports: the scheduler's, then Flight and gRPC per executor; free now and
# below Linux's ephemeral range (32768 up), where no outgoing connection takes one
# before the processes bind them
pick_ports() {
  local p=${AURUM_BALLISTA_BASE_PORT:-29500} picked=()
  for ((; ${#picked[@]} < 1 + 2 * executors; p++)); do
    [ "$p" -lt 32000 ] || die "no free ports found"
    port_free "$p" && picked+=("$p")
  done
  echo "${picked[@]}"
}

# launch DIR NAME ARGS...: start the binary in its own session, logging to DIR/logs
launch() {
  local dir=$1 name=$2
  shift 2
  mkdir -p "$dir/logs" "$dir/run"
  AURUM_BALLISTA_ROLE="$dir/$name" RUST_LOG=${RUST_LOG:-info} \
    setsid "$bin" "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 9>&- &
  echo "$!" > "$(pidfile "$dir" "$name")"
  sleep 0.1
  running "$dir" "$name" || die "$name did not start (log: $dir/logs/$name.log)"
}

# registered DIR: how many executors the scheduler counts as alive
registered() {
  local port
  port=$(scheduler_port "$1")
  curl -s --max-time 2 "http://127.0.0.1:$port/readyz" | sed -n 's/^[a-z ]*: \([0-9]*\)[/ ].*/\1/p'
}

scheduler_port() { read -r p _ < "$1/ports"; echo "$p"; }

# wait_registered DIR N: until the scheduler counts N executors (a killed one
# still counts until it is declared lost)
wait_registered() {
  local dir=$1 want=$2 start=$SECONDS
  while [ "$(registered "$dir")" -lt "$want" ] 2>/dev/null || [ -z "$(registered "$dir")" ]; do
    [ $((SECONDS - start)) -lt 60 ] || die "the scheduler counts $(registered "$dir" || true) executors, not $want, after 60 s (logs: $dir/logs)"
    sleep 0.3
  done
}

start_executor_proc() {
  local dir=$1 n=$2 ports flight grpc
  running "$dir" "executor$n" && return 0
  read -r -a ports < "$dir/ports"
  flight=${ports[$((2 * n - 1))]}
  grpc=${ports[$((2 * n))]}
  port_free "$flight" && port_free "$grpc" || die "executor $n's ports $flight/$grpc are taken"
  launch "$dir" "executor$n" ballista-executor --scheduler "127.0.0.1:$(scheduler_port "$dir")" \
    --bind-host 127.0.0.1 --external-host 127.0.0.1 --flight-port "$flight" --grpc-port "$grpc" \
    --concurrent-tasks "$slots" --work-dir "$dir/executor$n" --heartbeat-secs 3
}

print_env() {
  local dir=$1 pids=() name
  for name in scheduler $(seq -f 'executor%g' 1 "$executors"); do
    running "$dir" "$name" && pids+=("$(cat "$(pidfile "$dir" "$name")")")
  done
  echo "AURUM_BALLISTA_URL=ballista://127.0.0.1:$(scheduler_port "$dir")"
  echo "AURUM_BALLISTA_PIDS='${pids[*]}'"
}

start() {
  local dir=$1 n start=$SECONDS
  [ -x "$bin" ] || die "$bin not found: build the workspace first (or set AURUM_JOB_RUNNER_BIN)"
  command -v curl >/dev/null || { log "installing curl from apt"; apt-get install -y -qq curl >&2; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if ! running "$dir" scheduler; then
    for n in $(seq 1 "$executors"); do stop_proc "$dir" "executor$n" KILL; done
    pick_ports > "$dir/ports"
    port_free "$(scheduler_port "$dir")" || die "port $(scheduler_port "$dir") is taken"
    launch "$dir" scheduler ballista-scheduler --bind-host 127.0.0.1 --port "$(scheduler_port "$dir")" \
      --executor-timeout-secs 20
    until curl -s --max-time 2 "http://127.0.0.1:$(scheduler_port "$dir")/healthz" >/dev/null; do
      running "$dir" scheduler || die "the scheduler exited (log: $dir/logs/scheduler.log)"
      [ $((SECONDS - start)) -lt 60 ] || die "the scheduler did not answer within 60 s"
      sleep 0.2
    done
  fi
  for n in $(seq 1 "$executors"); do start_executor_proc "$dir" "$n"; done
  wait_registered "$dir" "$executors"
  log "scheduler and $executors executors ready on 127.0.0.1 after $((SECONDS - start)) s (logs: $dir/logs)"
  print_env "$dir"
}

stop() {
  local dir=$1 n
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  for n in $(seq 1 "$executors"); do stop_proc "$dir" "executor$n" TERM; done
  stop_proc "$dir" scheduler TERM
  log "stopped"
}

check_n() {
  [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$executors" ] ||
    { log "executor number must be 1..$executors, not '$1'"; exit 2; }
}

usage() {
  echo "usage: testenv/ballista.sh start|stop|env DIR | kill-executor|start-executor DIR N" >&2
  exit 2
}

cmd=${1:-}
case "$cmd" in
  start|stop|env) [ $# -eq 2 ] || usage ;;
  kill-executor|start-executor) [ $# -eq 3 ] || usage; check_n "$3" ;;
  *) usage ;;
esac
case "$cmd" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  env) print_env "$(cd "$2" && pwd)" ;;
  kill-executor)
    dir=$(cd "$2" && pwd)
    stop_proc "$dir" "executor$3" KILL
    log "killed executor $3" ;;
  start-executor)
    dir=$(cd "$2" && pwd)
    # the scheduler may still count the dead one: wait for this one's own word
    from=$(stat -c %s "$dir/logs/executor$3.log" 2>/dev/null || echo 0)
    start_executor_proc "$dir" "$3"
    until tail -c +"$((from + 1))" "$dir/logs/executor$3.log" | grep -q "Executor registration succeed"; do
      running "$dir" "executor$3" || die "executor $3 exited (log: $dir/logs/executor$3.log)"
      sleep 0.2
    done
    log "executor $3 is up" ;;
esac
