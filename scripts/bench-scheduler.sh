#!/usr/bin/env bash
# Scheduler benchmark on three-node loopback clusters of the release binary;
# prints JSON on stdout (progress on stderr).
#
#   scripts/bench-scheduler.sh          the full run (several minutes)
#   scripts/bench-scheduler.sh --test   a seconds-long smoke run
#
# Other options: --workers N, --jobs N, --window-s N, --same-second-jobs N,
# --failover-jobs N, --failovers N, --concurrency N, --only PARTS
# (see benches/scheduler.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --quiet --bench scheduler -- "$@"
