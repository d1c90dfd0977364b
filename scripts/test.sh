#!/usr/bin/env bash
# Run every test of wsbench on this machine.
#
# Installs what the tests need when it is missing (system packages through
# apt-get, Rust components through rustup), then runs formatting and lint
# checks and the whole test suite. Safe to run again: installed pieces are
# skipped. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- system packages -------------------------------------------------------
# redis-server, nginx and prometheus are started by the tests as plain processes on
# free loopback ports; they are never used as system services.
need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
command -v cc >/dev/null 2>&1 || need_pkgs+=(build-essential)
# The browser test drives Debian's chromium through playwright-core (npm);
# no browser is ever downloaded by npm.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
# loadgen/tests/dashboards.rs: a real Prometheus scrapes a run and the nodes.
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
# server/tests/lifecycle.rs reads the node's listen backlog with `ss`.
command -v ss >/dev/null 2>&1 || need_pkgs+=(iproute2)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing system packages: ${need_pkgs[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  # Debian starts the services on install; the tests start their own.
  for svc in redis-server nginx prometheus; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# --- playwright-core, for the browser test --------------------------------
PLAYWRIGHT_DIR="target/browser-test"
if [ ! -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ]; then
  log "installing playwright-core (npm) into $PLAYWRIGHT_DIR"
  mkdir -p "$PLAYWRIGHT_DIR"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$PLAYWRIGHT_DIR" \
    --no-audit --no-fund --silent playwright-core@1 >/dev/null
fi
export PLAYWRIGHT_CORE="$PWD/$PLAYWRIGHT_DIR/node_modules/playwright-core"
export CHROMIUM="$(command -v chromium)"
# The dashboards test starts its own Prometheus on a free port; set, the
# variable makes a missing binary a failure rather than a skip.
export PROMETHEUS="$(command -v prometheus || echo /usr/bin/prometheus)"

# --- third-party WebSocket servers, for the protocol-profile tests ---------
# graphql-ws (with ws and graphql) and socket.io from npm, run by node.
SERVERS_DIR="target/test-servers"
if [ ! -f "$SERVERS_DIR/node_modules/socket.io/package.json" ] \
  || [ ! -f "$SERVERS_DIR/node_modules/graphql-ws/package.json" ] \
  || ! cmp -s loadgen/tests/servers/package.json "$SERVERS_DIR/package.json"; then
  log "installing the npm test servers (graphql-ws, ws, graphql, socket.io) into $SERVERS_DIR"
  mkdir -p "$SERVERS_DIR"
  cp loadgen/tests/servers/package.json "$SERVERS_DIR/"
  npm install --prefix "$SERVERS_DIR" --no-audit --no-fund --silent >/dev/null
fi
cp loadgen/tests/servers/*.mjs "$SERVERS_DIR/"
export WSBENCH_TEST_SERVERS="$PWD/$SERVERS_DIR"

# --- Rust components -------------------------------------------------------
for comp in rustfmt clippy; do
  if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
    log "adding rust component $comp"
    rustup component add "$comp"
  fi
done

# cargo-modules draws each crate's module graph for the import-cycle check
# (scripts/check-modules.sh). Built from crates.io once (~8 min on 2 cores),
# then kept in ~/.cargo/bin. 0.27.0 is the last release that builds with
# rustc 1.95.
if ! cargo modules --version >/dev/null 2>&1; then
  log "installing cargo-modules 0.27.0 (crates.io)"
  cargo install cargo-modules --version 0.27.0 --locked --quiet
fi

# --- disk ------------------------------------------------------------------
# A whole run from a fresh clone leaves about 5.2 GiB in target/ (measured
# 2026-11-30); a full disk shows up much later as an obscure "failed to
# write ... rmeta" from cargo, so say it up front.
need_gib=6
avail_gib=$(df -Pk . | awk 'NR==2 { print int($4 / 1048576) }')
if [ -n "$avail_gib" ] && [ "$avail_gib" -lt "$need_gib" ]; then
  if [ ! -d target/debug ]; then
    echo "scripts/test.sh: only ${avail_gib} GiB free on $(df -P . | awk 'NR==2 { print $6 }');" \
      "a clean build needs about ${need_gib} GiB. Free some space and run again." >&2
    exit 1
  fi
  echo "scripts/test.sh: warning: only ${avail_gib} GiB free; the build may run out of space" >&2
fi

# Each test process may hold thousands of sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "no import cycles among modules (cargo-modules + tsort)"
bash scripts/check-modules.sh

log "cargo bench --no-run (the benches build)"
cargo bench --workspace --locked --no-run >/dev/null 2>&1 || cargo bench --workspace --locked --no-run

log "cargo test"
cargo test --workspace --locked "$@" 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}

# One summary line over all test binaries.
passed=$(grep -Eo '^test result: .*' target/test-output.txt | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .*' target/test-output.txt | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo
echo "$passed passed, $failed failed"
exit "$status"
