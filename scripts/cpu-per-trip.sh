#!/usr/bin/env bash
# CPU per round trip of each side, user and system apart, with context
# switches per message: 5 s of a steady phase at CONNS x 10/s.
#
#   scripts/cpu-per-trip.sh ours|bare|ws CONNS [LOADGEN]
#
#   ours  loadgen (or the binary LOADGEN, to compare two builds) and its
#         embedded node
#   bare  tcp_floor (32 bytes each way over bare epoll TCP)
#   ws    tcp_floor --ws (loadgen's echo messages as masked WebSocket
#         frames, one epoll loop per side: the protocol floor)
#
# floor_compare gives the ratios; this gives the split behind them (user
# time is what code changes move; system time is mostly the kernel's
# loopback path). Alternate the builds or sides being compared, several
# rounds each: on a shared 2-core host one reading moves by 10-20 %.
# Each side's total is exact (the scheduler's runtime), but its split into
# user and system time is the kernel's tick sample (250 Hz here): at
# 3,000 connections about 8 % of noise on loadgen's user figure. Compare
# user time across builds with perf's shares instead (docs/BENCHMARKS.md,
# session 14).
# Figures: docs/BENCHMARKS.md. Build first:
#   cargo build --release -p loadgen -p wsbench-benches --bins
# WSBENCH_BIN names another directory holding loadgen and tcp_floor (the
# test of this script runs the debug builds).
set -euo pipefail
kind=${1:?ours|bare|ws}
conns=${2:?connections}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${WSBENCH_BIN:-$root/target/release}
loadgen=${3:-$bin/loadgen}
ulimit -n 20000
case $kind in
ours)
    "$loadgen" --stages "3s:$conns,10s:$conns" --rate 10 --quiet \
        --json /tmp/cpu-per-trip-$$.json >/dev/null 2>&1 &
    server_pattern='__node --listen'
    ;;
bare | ws)
    flag=()
    [ "$kind" = ws ] && flag=(--ws)
    "$bin/tcp_floor" "${flag[@]}" --conns "$conns" --rate 10 --duration 10 \
        >/dev/null 2>&1 &
    server_pattern='tcp_floor .*--serve'
    ;;
*)
    echo "usage: $0 ours|bare|ws CONNS [LOADGEN]" >&2
    exit 2
    ;;
esac
client=$!
trap 'kill $client 2>/dev/null || true; rm -f /tmp/cpu-per-trip-$$.json' EXIT
sleep 6
server=$(pgrep -P "$client" -f "$server_pattern" | head -1 || true)
[ -n "$server" ] || server=$(pgrep -f "$server_pattern" | head -1)
ticks() { awk '{print $14, $15}' "/proc/$client/stat" "/proc/$server/stat" | tr '\n' ' '; }
switches() {
    for p in "$client" "$server"; do
        cat /proc/"$p"/task/*/status | awk '/ctxt_switches/ {s += $2} END {printf "%d ", s}'
    done
}
read -r -a a <<<"$(ticks)"
read -r -a ca <<<"$(switches)"
sleep 5
read -r -a b <<<"$(ticks)"
read -r -a cb <<<"$(switches)"
hz=$(getconf CLK_TCK)
msgs=$((conns * 10 * 5))
awk -v k="$kind" -v m="$msgs" -v hz="$hz" \
    -v cu=$((b[0] - a[0])) -v cs=$((b[1] - a[1])) -v su=$((b[2] - a[2])) -v ss=$((b[3] - a[3])) \
    -v cc=$((cb[0] - ca[0])) -v sc=$((cb[1] - ca[1])) 'BEGIN {
    f = 1e6 / hz / m
    printf "%s: client user %.2f sys %.2f | server user %.2f sys %.2f | total %.2f us/trip | switches/msg client %.3f server %.3f\n",
        k, cu * f, cs * f, su * f, ss * f, (cu + cs + su + ss) * f, cc / m, sc / m
}'
wait "$client" || true
