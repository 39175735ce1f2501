#!/bin/bash
# hearth-bot against a Release hearth (packet, characters and world on SQLite; docs/benchmarks.md,
# "World over the network"): a warm-up run lets the bots walk apart from the spawn point where
# new characters enter (their positions are saved at logout), then a measured run with the same
# prefix starts where they stood. Environment: BOTS (2000), MOVING (all), WARM (150 s), DURATION
# (30 s), SPREAD (630), MOVE_HZ (10), PREFIX, SERVER (the hearth binary, build/release/hearth: a
# copy of another build's for a side-by-side run). Writes warm.json, summary.json, zones.json to OUT.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-$(mktemp -d)}; mkdir -p "$OUT"
DATA=$(mktemp -d); HTTP=15992; GAME=15993
export HEARTH_SERVER__DATA_DIR="$DATA" HEARTH_HTTP__LISTEN="127.0.0.1:$HTTP" HEARTH_HTTP__ADMIN_TOKEN=botrun \
  HEARTH_PACKET__ENABLED=true HEARTH_PACKET__LISTEN="127.0.0.1:$GAME" HEARTH_CHARACTERS__ENABLED=true \
  HEARTH_WORLD__ENABLED=true HEARTH_AUTH__PASSWORD_OPS_LIMIT=1 HEARTH_AUTH__PASSWORD_MEM_LIMIT_KIB=8192
"${SERVER:-build/release/hearth}" serve > "$OUT/server.log" 2>&1 &
PID=$!
# A failed or interrupted run leaves no server and no data behind.
trap 'kill -INT $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"' EXIT
for i in $(seq 1 100); do curl -s "http://127.0.0.1:$HTTP/health" >/dev/null && break; sleep 0.2; done
COMMON=(--host 127.0.0.1 --port $GAME --bots "${BOTS:-2000}" --moving "${MOVING:-${BOTS:-2000}}" --move-hz "${MOVE_HZ:-10}"
  --zone 1 --spread "${SPREAD:-630}" --bots-per-account 5 --api "http://127.0.0.1:$HTTP" --admin-token botrun
  --server-pid $PID --quiet --json --prefix "${PREFIX:-spread}")
build/release/hearth-bot "${COMMON[@]}" --duration "${WARM:-150}" --speed 1.0 > "$OUT/warm.json" 2> "$OUT/warm.err"
echo "warm exit $?"
build/release/hearth-bot "${COMMON[@]}" --duration "${DURATION:-30}" > "$OUT/summary.json" 2> "$OUT/bot.err"
echo "bot exit $?"
curl -s -H "Authorization: Bearer botrun" "http://127.0.0.1:$HTTP/api/v1/world/zones" > "$OUT/zones.json"
