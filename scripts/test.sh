#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine with Rust: installs what the tests need
# (PostgreSQL server, Chromium for the offline /docs check, ffmpeg as the reference decoder, the
# official vendor SDKs: Python ones in a virtualenv, Node.js ones from npm), starts a
# throwaway PostgreSQL cluster on a free loopback port, runs every test against it and SQLite,
# and stops it again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
{ command -v node && command -v npm; } >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A throwaway PostgreSQL cluster on a free loopback port, stopped on exit.
. scripts/postgres.sh
export SPEECHGATE_TEST_POSTGRES_URL="$postgres_url"

# Official vendor SDKs, as the clients of the drop-in tests. Python ones in a virtualenv, pinned
# by tests/sdk/requirements.txt (reinstalled when that file changes).
sdk_venv=target/sdk-venv
if ! cmp -s tests/sdk/requirements.txt "$sdk_venv/.speechgate-installed"; then
  [ -x "$sdk_venv/bin/pip" ] || python3 -m venv "$sdk_venv"
  "$sdk_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$sdk_venv/.speechgate-installed"
fi
export SPEECHGATE_TEST_PYTHON="$PWD/$sdk_venv/bin/python"

# Node.js ones, one directory per vendor, each pinned by its package-lock.json. Verified on
# Node 20; the Speechbase SDK's dependency p-retry declares >=22 but runs on 20 (npm only warns).
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "the Node.js SDK tests need Node.js 20 or later; found $(node --version)" >&2
  exit 1
fi
for sdk in tests/sdk/*/; do
  [ -f "$sdk/package-lock.json" ] || continue
  if ! cmp -s "$sdk/package-lock.json" "$sdk/node_modules/.speechgate-installed"; then
    (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$sdk/package-lock.json" "$sdk/node_modules/.speechgate-installed"
  fi
done
export SPEECHGATE_TEST_OPENAI_SDK="$PWD/tests/sdk/openai"
export SPEECHGATE_TEST_ELEVENLABS_SDK="$PWD/tests/sdk/elevenlabs"
export SPEECHGATE_TEST_SPEECHBASE_SDK="$PWD/tests/sdk/speechbase"

# Then the soak (tests/soak.rs: 60 s of mixed traffic with injected faults), on its own so that
# it neither slows the suite nor is slowed by it.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --lib --bins --tests --no-fail-fast
  cargo nextest run --test soak --run-ignored only --no-capture
else
  cargo test --lib --bins --tests --no-fail-fast
  cargo test --test soak -- --ignored --nocapture
fi
