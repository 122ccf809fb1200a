#!/usr/bin/env bash
# Run every fuzz target for a while (default 60 s each).
#
#   scripts/fuzz.sh [SECONDS]
#
# Needs cargo-fuzz (installed here if missing). Only a stable toolchain is
# assumed: RUSTC_BOOTSTRAP lets cargo-fuzz use the unstable flags it needs,
# and the sanitizer is off. Crashes land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  echo "fuzz: $target for ${seconds}s"
  corpus="corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  cargo fuzz run --sanitizer none "$target" "$corpus" "${seeds[@]}" -- -max_total_time="$seconds" -timeout=5 -max_len=4096
done
