#!/usr/bin/env bash
# Delay-queue and idempotency-ledger benchmark on a three-node loopback
# cluster of the release binary; prints JSON.
#
#   scripts/bench-queue.sh          the full run (about a minute)
#   scripts/bench-queue.sh --test   a quick smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --quiet --bench queue -- "$@"
