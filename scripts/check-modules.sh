#!/usr/bin/env bash
# No import cycle among the modules of each crate.
#
# The module graph comes from cargo-modules (a tool we did not write): its
# module-level graph, with both "owns" (parent -> child) and "uses" edges
# (a module naming an item of another, resolved to the module that defines
# it). coreutils' tsort then finds any loop. `cargo modules dependencies
# --acyclic` itself is not used: in 0.27 it also reports a type and its own
# methods as a cycle, whatever the filters.
#
# The check first runs on scripts/modcheck-fixture, a crate with one known
# cycle, and fails unless it finds it: a check that could not fail would
# prove nothing.
#
# Usage: scripts/check-modules.sh [package ...]   (default: every workspace crate)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo modules --version >/dev/null 2>&1; then
  echo "cargo-modules is missing: cargo install cargo-modules --version 0.27.0 --locked" >&2
  exit 2
fi

# Prints the cycle (if any) of one package's library; returns tsort's status.
cycles() {
  local manifest=$1 pkg=$2 edges
  edges=$(cargo modules dependencies --manifest-path "$manifest" --lib -p "$pkg" \
    --no-externs --no-sysroot --no-fns --no-types --no-traits) || return 3
  local loops
  loops=$(grep -- '->' <<<"$edges" \
    | sed -E 's/^ *"([^"]+)" -> "([^"]+)".*/\1 \2/' \
    | { tsort 2>&1 >/dev/null || true; })
  [ -z "$loops" ] && return 0
  sed 's/^/    /' <<<"$loops"
  return 1
}

echo "module cycles: fixture with a known cycle"
if cycles scripts/modcheck-fixture/Cargo.toml modcheck-fixture >/dev/null; then
  echo "the check found no cycle in scripts/modcheck-fixture, which has one: the check is broken" >&2
  exit 1
fi

packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(protocol server loadgen cluster)
status=0
for p in "${packages[@]}"; do
  if out=$(cycles Cargo.toml "$p"); then
    echo "module cycles: $p: none"
  else
    echo "module cycles: $p: FOUND"
    echo "$out"
    status=1
  fi
done
exit "$status"
