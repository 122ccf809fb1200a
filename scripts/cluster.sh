#!/usr/bin/env bash
# A three-node gnomon cluster on this machine, for trying things out.
#
#   scripts/cluster.sh start    build, start nodes 1-3 on 127.0.0.1:7701-7703, form the cluster
#   scripts/cluster.sh status   each node's view of the cluster
#   scripts/cluster.sh stop     SIGTERM every node and wait for it to exit
#
# Data and logs live under $GNOMON_CLUSTER_DIR (default ./gnomon-cluster).
# Starting again after a stop resumes the same cluster from its data.
# GNOMON_TOKEN, when set, is passed to the nodes and used by the script.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${GNOMON_CLUSTER_DIR:-$PWD/gnomon-cluster}"
bin="${GNOMON_BIN:-$root/target/release/gnomon}"
ports=(7701 7702 7703)

auth=()
if [ -n "${GNOMON_TOKEN:-}" ]; then auth=(-H "Authorization: Bearer $GNOMON_TOKEN"); fi

url() { echo "http://127.0.0.1:${ports[$(($1 - 1))]}"; }

# Wait up to 30 s for URL to answer 200.
wait_200() {
  for _ in $(seq 300); do
    if curl -fsS -o /dev/null "${auth[@]}" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "cluster.sh: $1 did not answer in 30 s; see $dir/node-*.log" >&2
  return 1
}

# Whether node $1 runs: its pid is alive and not a zombie (a killed node
# whose parent is gone may linger as one where nothing reaps orphans).
running() {
  local pid
  [ -f "$dir/node-$1.pid" ] || return 1
  pid=$(cat "$dir/node-$1.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]
}

start_node() { # id [extra args...]
  local id=$1; shift
  if running "$id"; then echo "node $id is already running"; return; fi
  "$bin" serve --id "$id" --listen "127.0.0.1:${ports[$((id - 1))]}" \
    --data-dir "$dir/node-$id" "$@" >>"$dir/node-$id.log" 2>&1 &
  echo $! >"$dir/node-$id.pid"
}

cmd_start() {
  if [ -z "${GNOMON_BIN:-}" ]; then
    (cd "$root" && cargo build --release --quiet)
  fi
  mkdir -p "$dir"
  local fresh=0
  [ -d "$dir/node-1" ] || fresh=1
  if [ "$fresh" = 1 ]; then
    start_node 1
    start_node 2 --no-bootstrap
    start_node 3 --no-bootstrap
    wait_200 "$(url 1)/readyz"
    for id in 2 3; do
      wait_200 "$(url "$id")/healthz"
      curl -fsS "${auth[@]}" -H 'content-type: application/json' \
        -d "{\"id\":$id,\"addr\":\"127.0.0.1:${ports[$((id - 1))]}\"}" \
        "$(url 1)/v1/cluster/members" >/dev/null
    done
  else
    for id in 1 2 3; do start_node "$id"; done
  fi
  for id in 1 2 3; do wait_200 "$(url "$id")/readyz"; done
  echo "gnomon cluster is up: $(url 1) $(url 2) $(url 3) (data in $dir)"
}

cmd_stop() {
  for id in 1 2 3; do
    if running "$id"; then
      local pid; pid=$(cat "$dir/node-$id.pid")
      kill -TERM "$pid"
      while running "$id"; do sleep 0.1; done
      echo "node $id stopped"
    fi
    rm -f "$dir/node-$id.pid"
  done
}

cmd_status() {
  for id in 1 2 3; do
    printf 'node %s: ' "$id"
    curl -fsS "${auth[@]}" "$(url "$id")/v1/cluster?stale=true" 2>/dev/null || printf 'down'
    echo
  done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
