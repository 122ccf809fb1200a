#!/usr/bin/env bash
# A browser test of the web UI, for developers (CI does not run it).
#
#   scripts/ui-test.sh              build the debug binary, test against it
#   scripts/ui-test.sh --release    build and use the release binary
#   GNOMON_BIN=path scripts/ui-test.sh    use that binary, build nothing
#
# It installs what it lacks: Debian's chromium (apt-get, as root or through
# sudo) and playwright-core (npm, into a temporary directory). Then it starts
# one node with a token on a free loopback port, creates jobs through the
# API, and drives headless Chromium through scripts/ui-test.cjs: the token
# prompt, the jobs list, pause and resume, the form's API error naming
# `schedule`, creating a job, the job page and its runs, the other pages,
# and that user text stays text. Screenshots land in $UI_TEST_OUT (default
# /tmp/gnomon-ui-test). About 10 s once chromium is installed and the binary
# is built; installing chromium the first time takes a minute or two.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${UI_TEST_OUT:-${TMPDIR:-/tmp}/gnomon-ui-test}"
profile=debug
if [ "${1:-}" = "--release" ]; then profile=release; fi

work="$(mktemp -d)"
node_pid=
cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

start=$(date +%s)

if [ -n "${GNOMON_BIN:-}" ]; then
  bin="$GNOMON_BIN"
else
  if [ "$profile" = release ]; then
    (cd "$root" && cargo build --release --bin gnomon --quiet)
  else
    (cd "$root" && cargo build --bin gnomon --quiet)
  fi
  bin="$root/target/$profile/gnomon"
fi

if ! [ -x /usr/bin/chromium ]; then
  echo "ui-test: installing Debian's chromium" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

echo "ui-test: installing playwright-core into $work/npm" >&2
mkdir -p "$work/npm"
npm install --prefix "$work/npm" --no-audit --no-fund --loglevel=error playwright-core@1 >/dev/null

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
token="ui-test-$RANDOM$RANDOM"
"$bin" serve --id 1 --listen "127.0.0.1:$port" --data-dir "$work/node" --token "$token" \
  >"$work/node.log" 2>&1 &
node_pid=$!

for _ in $(seq 300); do
  if curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then break; fi
  sleep 0.1
done
if ! curl -fsS -o /dev/null "$url/readyz"; then
  echo "ui-test: the node did not become ready; its log:" >&2
  cat "$work/node.log" >&2
  exit 1
fi

api() { # method path [body]
  curl -fsS -X "$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    ${3:+-d "$3"} "$url$2" >/dev/null
}
# Port 9 (discard) refuses connections: every attempt fails, so runs retry and die.
api PUT /v1/jobs/ui-test%2Fhook \
  '{"schedule":"*/5 * * * * *","target":{"type":"http","url":"http://127.0.0.1:9/hook"},"retry":{"backoff_ms":[0]}}'
api PUT /v1/jobs/nightly-report \
  '{"schedule":"0 30 2 * * *","timezone":"Europe/Berlin","target":{"type":"http","url":"http://127.0.0.1:9/report","body":"<img src=x onerror=window.__injected=1>"},"labels":{"team":"<b>billing</b>"}}'
api POST /v1/locks/door/acquire '{"owner":"ui-test","ttl_ms":600000}'
api POST /v1/queues/emails/messages '{"payload":"hello"}'
api POST /v1/queues/emails/messages '{"payload":"later","delay_ms":600000}'

mkdir -p "$out"
status=0
NODE_PATH="$work/npm/node_modules" BASE="$url" TOKEN="$token" OUT="$out" PROFILE_DIR="$work/chromium" \
  node "$root/scripts/ui-test.cjs" || status=$?
if [ "$status" != 0 ]; then
  echo "ui-test: FAILED; the node's log is below" >&2
  tail -n 50 "$work/node.log" >&2
  exit "$status"
fi
echo "ui-test: passed in $(($(date +%s) - start)) s; screenshots in $out"
