#!/usr/bin/env bash
# MQTT benchmarks (docs/benchmarks.md, section "MQTT"), all in one session:
#   1. mosquitto on 127.0.0.1:18830 and a single Fleetcore node (MQTT 18831,
#      HTTP 18832, Raft 18833, fresh data dir): idle connections and broker RSS per
#      connection (first, while both processes are fresh), then QoS 0 fan-in and
#      QoS 1 throughput with the same parameters for both;
#   2. the 3-node local cluster (deploy/local-cluster.sh, HTTP 8081-8083,
#      Raft 7001-7003, MQTT 1884-1886, fresh state dir): cross-node latency at
#      10,000 msgs/s (publisher on node 1, subscriber on node 2), shadow updates
#      over MQTT through all three nodes.
# Everything it starts is stopped on exit. It builds nothing: run
# `cargo build --release -p fleetcore -p fleetcore-bench` first. Installs mosquitto with apt-get if
# it is missing.
#
# Environment: DURATION (each throughput run, default 10s), LATENCY_DURATION
# (each latency run, default 30s), FLEETCORE_BIN, FLEETCORE_BENCH_BIN, KEEP_LOGS=1 (keep the temp dir
# with the brokers' logs), QUIET_TIMEOUT (seconds to wait for other load on the
# machine to end before each run, default 900), SKIP_CONNECTIONS=1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${FLEETCORE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/fleetcore}
bench_bin=${FLEETCORE_BENCH_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/fleetcore-bench}
duration=${DURATION:-10s}
latency_duration=${LATENCY_DURATION:-30s}

if [ ! -x "$bin" ] || [ ! -x "$bench_bin" ]; then
  echo "no $bin or $bench_bin: run 'cargo build --release -p fleetcore -p fleetcore-bench' first (or set FLEETCORE_BIN, FLEETCORE_BENCH_BIN)" >&2
  exit 1
fi

mosquitto_bin=$(command -v mosquitto || true)
if [ -z "$mosquitto_bin" ] && [ -x /usr/sbin/mosquitto ]; then mosquitto_bin=/usr/sbin/mosquitto; fi
if [ -z "$mosquitto_bin" ]; then
  echo "installing mosquitto (apt-get install -y mosquitto)" >&2
  apt-get install -y mosquitto >/dev/null || { apt-get update >/dev/null && apt-get install -y mosquitto >/dev/null; }
  mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 18830 18831 18832 18833 8081 8082 8083 7001 7002 7003 1884 1885 1886; do
  if port_open "$port"; then
    echo "127.0.0.1:$port is in use; stop whatever listens there first" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fleetcore-bench-mqtt.XXXXXX")
# A private copy, so a rebuild during the run cannot mix two builds.
src_bin=$bin
cp "$bin" "$work/fleetcore"
bin=$work/fleetcore
cp "$bench_bin" "$work/fleetcore-bench"
bench_bin=$work/fleetcore-bench
export FLEETCORE_CLUSTER_DIR=$work/cluster FLEETCORE_BIN=$bin
mosquitto_pid=
single_pid=
cluster_started=

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  if [ -n "$cluster_started" ]; then "$here/local-cluster.sh" stop >/dev/null; fi
  stop_pid "$single_pid"
  stop_pid "$mosquitto_pid"
  if [ -n "${KEEP_LOGS:-}" ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  for _ in $(seq 1 300); do port_open "$1" && return 0; sleep 0.1; done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}
wait_ready() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node with HTTP 127.0.0.1:$1 not ready" >&2
  exit 1
}

# Other work on the machine (a build, a test run) would distort every figure:
# before each run, wait until the machine is quiet (< 15% of one core busy over
# 2 s, our idle brokers included).
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
wait_quiet() {
  local waited=0 a b
  while :; do
    a=$(busy_ticks); sleep 2; b=$(busy_ticks)
    [ $((b - a)) -lt 30 ] && return 0
    if [ "$waited" -eq 0 ]; then
      echo "(machine busy, $(((b - a) / 2))% of a core: waiting for it to be quiet)" >&2
    fi
    waited=$((waited + 2))
    if [ "$waited" -ge "${QUIET_TIMEOUT:-900}" ]; then
      echo "(machine still busy after ${waited}s: measuring anyway, see the 'other' CPU column)" >&2
      return 0
    fi
  done
}

# Largest connection count the broker's open-files limit allows, 100 spare.
max_connections() {
  local pid=$1 limit open
  limit=$(awk '/^Max open files/{print $4}' "/proc/$pid/limits")
  open=$(ls "/proc/$pid/fd" | wc -l)
  echo $((limit - open - 100))
}

# bench ARGS...: one `fleetcore-bench` run after the machine is quiet, repeated
# (up to 4 times) while other processes took more than MAX_OTHER (default 20)
# percent of a core during it (the last number of the CPU column); the first
# run of a table prints the header.
header=1
bench() {
  local out other attempt
  for attempt in 1 2 3 4; do
    wait_quiet
    out=$("$bench_bin" "$@")
    other=$(tail -n +3 <<<"$out" | grep -oE '/ [0-9]+ \|' | tr -dc '0-9\n' | sort -n | tail -1 || true)
    if [ -z "$other" ] || [ "$other" -le "${MAX_OTHER:-20}" ]; then break; fi
    if [ "$attempt" -lt 4 ]; then
      echo "(other processes took ${other}% of a core during the run: repeating it)" >&2
    else
      echo "(other processes took ${other}% of a core during the run: keeping this 4th attempt)" >&2
    fi
  done
  if [ "$header" = 1 ]; then echo "$out"; else tail -n +3 <<<"$out"; fi
  header=0
}
table() { header=1; echo; echo "### $*"; echo; }

echo "## Machine"
echo
echo "- CPUs: $(nproc) ($(lscpu | grep 'Model name' | sed 's/.*: *//'))"
echo "- memory: $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
echo "- open files limit: $(ulimit -Hn) (hard)"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- fleetcore: $(git -C "$root" rev-parse --short HEAD 2>/dev/null)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (plus uncommitted changes)'), $src_bin"
echo "- mosquitto: $("$mosquitto_bin" -h 2>/dev/null | head -1)"

cat >"$work/mosquitto.conf" <<EOF
listener 18830 127.0.0.1
allow_anonymous true
max_queued_messages 10000
persistence false
EOF
"$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mosquitto_pid=$!
"$bin" serve --node-id 1 --data-dir "$work/single" --http-addr 127.0.0.1:18832 \
  --raft-addr 127.0.0.1:18833 --mqtt-addr 127.0.0.1:18831 >"$work/single.log" 2>&1 &
single_pid=$!
wait_port 18830
wait_ready 18832
wait_port 18831
fc=127.0.0.1:18831
mq=127.0.0.1:18830

if [ -z "${SKIP_CONNECTIONS:-}" ]; then
  table "Idle connections (keep-alive 60 s), fresh broker processes"
  bench connections --target "$fc" --count "$(max_connections "$single_pid")" --pid "$single_pid" --label fleetcore
  bench connections --target "$mq" --count "$(max_connections "$mosquitto_pid")" --pid "$mosquitto_pid" --label mosquitto
fi

# Same parameters for both brokers, alternating at every rate.
fan_in="--publishers 8 --subscribers 1 --topics 8 --payload 64 --duration $duration"
table "Single node, QoS 0 fan-in: 8 publishers, 1 subscriber on bench/<run>/#"
for rate in 50000 100000 200000 300000 400000 0; do
  # shellcheck disable=SC2086
  bench mqtt --targets "$fc" $fan_in --qos 0 --rate "$rate" --broker-pids "$single_pid" --label fleetcore
  # shellcheck disable=SC2086
  bench mqtt --targets "$mq" $fan_in --qos 0 --rate "$rate" --broker-pids "$mosquitto_pid" --label mosquitto
done

table "Single node, QoS 1 fan-in: 8 publishers, 1 subscriber on bench/<run>/#"
for rate in 10000 25000 50000 100000 200000 0; do
  # shellcheck disable=SC2086
  bench mqtt --targets "$fc" $fan_in --qos 1 --rate "$rate" --broker-pids "$single_pid" --label fleetcore
  # shellcheck disable=SC2086
  bench mqtt --targets "$mq" $fan_in --qos 1 --rate "$rate" --broker-pids "$mosquitto_pid" --label mosquitto
done

pairs="--publishers 8 --subscribers 8 --topics 8 --payload 64 --duration $duration"
table "Single node, QoS 1 pairs: 8 publishers, 8 subscribers, one topic each"
for rate in 25000 50000 100000 200000 0; do
  # shellcheck disable=SC2086
  bench mqtt --targets "$fc" $pairs --qos 1 --rate "$rate" --broker-pids "$single_pid" --label fleetcore
  # shellcheck disable=SC2086
  bench mqtt --targets "$mq" $pairs --qos 1 --rate "$rate" --broker-pids "$mosquitto_pid" --label mosquitto
done

echo
echo "Fleetcore single node, /mqtt/stats after these runs:"
curl -s http://127.0.0.1:18832/mqtt/stats; echo

# The single node and mosquitto are done: free their CPU and memory.
stop_pid "$single_pid"
single_pid=
stop_pid "$mosquitto_pid"
mosquitto_pid=

echo
"$here/local-cluster.sh" start >/dev/null
cluster_started=1
for n in 1 2 3; do wait_ready "808$n"; wait_port "$((1883 + n))"; done
pids=$(cat "$FLEETCORE_CLUSTER_DIR"/node{1,2,3}.pid | paste -sd, -)
sleep 2
echo "### 3-node cluster (node pids $pids; CPU columns list node 1+2+3)"
echo
echo '```'
"$bin" cluster status --endpoint http://127.0.0.1:8081
echo '```'

table "Cluster, 10,000 msgs/s, 1 publisher on node 1 (1884), 1 subscriber on node 2 (1885)"
for qos in 0 1; do
  bench mqtt --targets 127.0.0.1:1884,127.0.0.1:1885 --cross-node --publishers 1 --subscribers 1 \
    --topics 1 --qos "$qos" --rate 10000 --duration "$latency_duration" --broker-pids "$pids" --label "cross-node"
  bench mqtt --targets 127.0.0.1:1884 --publishers 1 --subscribers 1 \
    --topics 1 --qos "$qos" --rate 10000 --duration "$latency_duration" --broker-pids "$pids" --label "same node (node 1)"
done

table "Cluster, shadow updates over MQTT (QoS 1), devices spread over the three nodes"
for devices in 1 16 256 1024; do
  bench shadow-mqtt --targets 127.0.0.1:1884,127.0.0.1:1885,127.0.0.1:1886 --devices "$devices" \
    --duration "$duration" --broker-pids "$pids" --label "all nodes"
done
leader=$("$bin" cluster status --endpoint http://127.0.0.1:8081 | awk '/^leader/{print $2}')
if [ -n "$leader" ]; then
  for devices in 256 1024; do
    bench shadow-mqtt --targets "127.0.0.1:$((1883 + leader))" --devices "$devices" \
      --duration "$duration" --broker-pids "$pids" --label "leader only (node $leader)"
  done
fi

echo
echo "Cluster after the runs (a changed term means an election happened):"
echo '```'
"$bin" cluster status --endpoint http://127.0.0.1:8081
for n in 1 2 3; do echo "node $n /mqtt/stats: $(curl -s "http://127.0.0.1:808$n/mqtt/stats")"; done
echo '```'
