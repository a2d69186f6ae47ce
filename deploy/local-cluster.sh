#!/usr/bin/env bash
# Three Fleetcore nodes on loopback: start | stop | status | restart N | kill N
#   node N: HTTP 808N, Raft gRPC 700N, MQTT 188(3+N) (1884-1886), WebSocket 900N,
#   data in deploy/.cluster/nodeN; MQTT/TLS 888(3+N) when deploy/.cluster/tls holds
#   certificates (deploy/gen-certs.sh deploy/.cluster/tls makes them).
# PIDs live in deploy/.cluster/nodeN.pid; stop ends exactly those processes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${FLEETCORE_CLUSTER_DIR:-$here/.cluster}
bin=${FLEETCORE_BIN:-}
if [ -z "$bin" ]; then
  for candidate in "${CARGO_TARGET_DIR:-$root/target}/release/fleetcore" "${CARGO_TARGET_DIR:-$root/target}/debug/fleetcore"; do
    if [ -x "$candidate" ]; then bin=$candidate; break; fi
  done
fi
initial="1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003"

need_bin() {
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "no fleetcore binary: run 'cargo build --release -p fleetcore' or set FLEETCORE_BIN" >&2
    exit 1
  fi
}

alive() { [ -f "$state/node$1.pid" ] && kill -0 "$(cat "$state/node$1.pid")" 2>/dev/null; }

start_node() {
  local n=$1
  if alive "$n"; then echo "node $n already running (pid $(cat "$state/node$n.pid"))"; return; fi
  mkdir -p "$state/node$n"
  local tls=()
  if [ -f "$state/tls/server.pem" ]; then
    tls=(--mqtt-tls-addr "127.0.0.1:$((8883 + n))" --mqtt-tls-cert "$state/tls/server.pem"
      --mqtt-tls-key "$state/tls/server.key" --mqtt-tls-client-ca "$state/tls/ca.pem"
      --mqtt-tls-client-auth optional)
  fi
  "$bin" serve --node-id "$n" --data-dir "$state/node$n" \
    --http-addr "127.0.0.1:808$n" --raft-addr "127.0.0.1:700$n" --mqtt-addr "127.0.0.1:$((1883 + n))" \
    --mqtt-ws-addr "127.0.0.1:900$n" "${tls[@]}" \
    --initial-cluster "$initial" >>"$state/node$n.log" 2>&1 &
  echo $! >"$state/node$n.pid"
  echo "node $n started (pid $!, http 127.0.0.1:808$n, raft 127.0.0.1:700$n, mqtt 127.0.0.1:$((1883 + n)), log $state/node$n.log)"
}

stop_node() {
  local n=$1 sig=${2:-TERM}
  if ! alive "$n"; then rm -f "$state/node$n.pid"; return; fi
  local pid; pid=$(cat "$state/node$n.pid")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$state/node$n.pid"
  echo "node $n stopped ($sig)"
}

case "${1:-}" in
  start) need_bin; mkdir -p "$state"; for n in 1 2 3; do start_node "$n"; done ;;
  stop) for n in 1 2 3; do stop_node "$n"; done ;;
  restart) need_bin; stop_node "$2"; start_node "$2" ;;
  kill) stop_node "$2" KILL ;;
  status)
    for n in 1 2 3; do
      if alive "$n"; then echo "node $n running (pid $(cat "$state/node$n.pid"))"; else echo "node $n stopped"; fi
    done
    if [ -n "$bin" ]; then "$bin" cluster status --endpoint http://127.0.0.1:8081 2>/dev/null || true; fi ;;
  clean) "$0" stop; rm -rf "$state" ;;
  *) echo "usage: $0 start|stop|status|restart N|kill N|clean" >&2; exit 2 ;;
esac
