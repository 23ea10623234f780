#!/usr/bin/env bash
# The load harness, one command: builds the release gateway and the harness, installs nginx-light
# (the bare-proxy floor) when apt can, starts a throwaway PostgreSQL, and runs every measurement
# (bench/README.md). The results are printed and replace the harness's section of BENCHMARKS.md.
# Arguments are passed to `speechgate-bench run` (e.g. `--seconds 10`, `--out other.md`).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo build --release --locked -p speechgate -p speechgate-bench

# PostgreSQL runs on the load generator's cores, away from the gateway's core 0.
postgres_pin=""
[ "$(nproc)" -ge 2 ] && postgres_pin="taskset -c 1-$(($(nproc) - 1))"
. scripts/postgres.sh

args=("$@")
[[ " $* " == *" --out "* ]] || args+=(--out BENCHMARKS.md)
target/release/speechgate-bench run --gateway target/release/speechgate --postgres "$postgres_url" "${args[@]}"
