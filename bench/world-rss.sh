#!/bin/bash
# The world's memory per connected character (docs/benchmarks.md, "World: memory per connected
# character"): BOTS characters connected to a Release hearth, MOVING of them walking, against the
# same characters logged in and idle outside the world (hearth-bot --lobby), each on a fresh
# server over the same data, RSS per bot from hearth-bot's summary (the server's RSS at the end
# less at the start of the bots' connections, over the bots connected).
#
# The characters are placed apart first: a placement run on a server whose [world] max_speed is
# PLACE_SPEED (150 units/s) lets them walk away from the spawn point in seconds (positions are
# saved at logout); at the normal speed a 10,000-character crowd at one point would see itself
# whole for minutes. Environment: BOTS (10000), MOVING (2000), SPREAD (2000: the whole Meadow),
# PLACE (150 s), DURATION (90 s), MOVE_HZ (10), DATA (a directory to keep the server's data in:
# a second run with the same DATA skips the placement; default a temporary one, removed at the
# end), RUNS ("lobby world"), SERVER (the hearth binary, build/release/hearth). Writes place.json,
# lobby.json, world.json and zones.json to OUT.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-$(mktemp -d)}; mkdir -p "$OUT"
BOTS=${BOTS:-10000}; MOVING=${MOVING:-2000}
HTTP=15994; GAME=15995; PID=
if [[ -n "${DATA:-}" ]]; then mkdir -p "$DATA"; KEEP=1; else DATA=$(mktemp -d); KEEP=0; fi
trap '[[ -n "$PID" ]] && kill -INT $PID 2>/dev/null; wait 2>/dev/null; [[ $KEEP == 1 ]] || rm -rf "$DATA"' EXIT
export HEARTH_SERVER__DATA_DIR="$DATA" HEARTH_HTTP__LISTEN="127.0.0.1:$HTTP" HEARTH_HTTP__ADMIN_TOKEN=rssrun \
  HEARTH_PACKET__ENABLED=true HEARTH_PACKET__LISTEN="127.0.0.1:$GAME" HEARTH_CHARACTERS__ENABLED=true \
  HEARTH_WORLD__ENABLED=true HEARTH_WORLD__MAX_PLAYERS_PER_ZONE=$BOTS \
  HEARTH_AUTH__PASSWORD_OPS_LIMIT=1 HEARTH_AUTH__PASSWORD_MEM_LIMIT_KIB=8192
COMMON=(--host 127.0.0.1 --port $GAME --bots "$BOTS" --zone 1 --bots-per-account 5
  --api "http://127.0.0.1:$HTTP" --admin-token rssrun --setup-timeout 120 --quiet --json --prefix rss)

start_server() {
  "${SERVER:-build/release/hearth}" serve >> "$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null && return 0; sleep 0.2; done
  echo "the server did not start: $OUT/server.log" >&2; exit 1
}
stop_server() { kill -INT $PID; wait $PID; }

if [[ ! -e "$DATA/placed" ]]; then
  HEARTH_WORLD__MAX_SPEED=${PLACE_SPEED:-150} start_server
  build/release/hearth-bot "${COMMON[@]}" --spread "${SPREAD:-2000}" --speed 1.0 --move-hz 10 \
    --chat-per-min 0 --duration "${PLACE:-150}" > "$OUT/place.json" 2> "$OUT/place.err" || { echo "placement failed: $OUT/place.err" >&2; exit 1; }
  stop_server
  touch "$DATA/placed"
fi

for run in ${RUNS:-lobby world}; do
  start_server
  if [[ $run == lobby ]]; then
    build/release/hearth-bot "${COMMON[@]}" --lobby --server-pid $PID --duration "${DURATION:-90}" \
      > "$OUT/lobby.json" 2> "$OUT/lobby.err" || { echo "lobby run failed: $OUT/lobby.err" >&2; exit 1; }
  else
    build/release/hearth-bot "${COMMON[@]}" --moving "$MOVING" --move-hz "${MOVE_HZ:-10}" \
      --spread "${SPREAD:-2000}" --server-pid $PID --duration "${DURATION:-90}" \
      > "$OUT/world.json" 2> "$OUT/world.err" || { echo "world run failed: $OUT/world.err" >&2; exit 1; }
    curl -s -H "Authorization: Bearer rssrun" "http://127.0.0.1:$HTTP/api/v1/world/zones" > "$OUT/zones.json"
  fi
  stop_server
done

for f in ${RUNS:-lobby world}; do
  jq -c '{lobby, in_world_at_end, server_rss_bytes_before, server_rss_bytes, server_rss_bytes_per_bot, server_cpu_per_s}' "$OUT/$f.json" \
    | sed "s/^/$f: /"
done
