#!/usr/bin/env bash
# The embedded node's CPU per echo, user and kernel apart, with the client fixed.
#
# Usage: benches/node_cpu/node_cpu.sh NODE_LOADGEN CLIENT_LOADGEN CONNS [LABEL]
#
# Starts `NODE_LOADGEN __node --listen 127.0.0.1:0` (wsnode as loadgen embeds
# it, RUST_LOG=warn), drives it with `CLIENT_LOADGEN --conns CONNS --rate 10
# --duration 16s`, reads the node's utime and stime from /proc 6 s and 14 s
# into the run (the steady phase), and prints CPU microseconds per message
# over that window (messages: loadgen's steady replies/s). Giving two builds
# of the node the same client binary, alternately, compares the node alone;
# floor_compare compares whole pairs against tcp_floor instead.
set -euo pipefail
NODE=$1 CLIENT=$2 CONNS=$3 LABEL=${4:-node}
ulimit -n 20000
DIR=$(mktemp -d)
trap 'kill $NPID 2>/dev/null || true; rm -rf "$DIR"' EXIT
RUST_LOG=warn "$NODE" __node --listen 127.0.0.1:0 </dev/null >"$DIR/node.log" 2>&1 &
NPID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(grep -o 'LISTENING .*' "$DIR/node.log" | awk '{print $2}' || true)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "node did not start" >&2; cat "$DIR/node.log" >&2; exit 1; }
"$CLIENT" --url "ws://$ADDR/ws/chat" --conns "$CONNS" --rate 10 --duration 16s \
  --node-pid "$NPID" >"$DIR/client.out" 2>&1 &
CPID=$!
ticks() { awk '{print $14" "$15}' "/proc/$NPID/stat"; }
sleep 6
read -r U0 K0 < <(ticks); S0=$(date +%s.%N)
sleep 8
read -r U1 K1 < <(ticks); S1=$(date +%s.%N)
wait $CPID || { tail -3 "$DIR/client.out" >&2; exit 1; }
RPS=$(grep -oE '[0-9]+ replies/s sustained in the steady phase' "$DIR/client.out" | head -1 | awk '{print $1}')
P99=$(grep -oE 'p99 [0-9.]+ms corrected \(p50 [0-9.]+ms\) in the steady' "$DIR/client.out" | head -1 | awk '{print $2}')
OTHER=$(grep -oE 'other processes used [0-9]+%' "$DIR/client.out" | head -1 | awk '{print $4}' || true)
HZ=$(getconf CLK_TCK)
awk -v l="$LABEL" -v c="$CONNS" -v u=$((U1 - U0)) -v k=$((K1 - K0)) -v hz="$HZ" \
  -v s0="$S0" -v s1="$S1" -v rps="${RPS:-0}" -v p99="${P99:-?}" -v other="${OTHER:--}" 'BEGIN {
  w = s1 - s0; m = rps * w
  if (m == 0) { print "no steady replies/s in the client output"; exit 1 }
  printf "%s conns=%s node: %.2f us/msg (user %.2f + kernel %.2f), %.0f%% of a core; %s replies/s, p99 %s, other processes %s\n",
    l, c, (u + k) / hz * 1e6 / m, u / hz * 1e6 / m, k / hz * 1e6 / m, (u + k) / hz / w * 100, rps, p99, other
}'
