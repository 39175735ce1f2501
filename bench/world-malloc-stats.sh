#!/bin/bash
# Where the world's memory sits in glibc's heap (docs/benchmarks.md, "Where the allocator keeps
# the rest"): the world half of bench/world-rss.sh over its placed data (DATA, made by a run of
# world-rss.sh with DATA set), then, AT seconds (80) into the bots' run, glibc's malloc_stats()
# (printed to the server's stderr, OUT/server.log) and malloc_trim(0) called in the server
# through gdb, with the RSS before and after. Environment: DATA (/tmp/rssdata), BOTS (10000),
# MOVING (2000), DURATION (100), AT (80), SERVER (build/release/hearth). Needs gdb and jq.
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/rssdata}; HTTP=15994; GAME=15995; OUT=${1:-$(mktemp -d)}; mkdir -p "$OUT"
[[ -e "$DATA/placed" ]] || { echo "no placed data in $DATA: run DATA=$DATA bench/world-rss.sh first" >&2; exit 1; }
BOTS=${BOTS:-10000}
export HEARTH_SERVER__DATA_DIR="$DATA" HEARTH_HTTP__LISTEN="127.0.0.1:$HTTP" HEARTH_HTTP__ADMIN_TOKEN=rssrun \
  HEARTH_PACKET__ENABLED=true HEARTH_PACKET__LISTEN="127.0.0.1:$GAME" HEARTH_CHARACTERS__ENABLED=true \
  HEARTH_WORLD__ENABLED=true HEARTH_WORLD__MAX_PLAYERS_PER_ZONE=$BOTS \
  HEARTH_AUTH__PASSWORD_OPS_LIMIT=1 HEARTH_AUTH__PASSWORD_MEM_LIMIT_KIB=8192
"${SERVER:-build/release/hearth}" serve > "$OUT/server.log" 2>&1 &
PID=$!
trap 'kill -INT $PID 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$HTTP/health" >/dev/null && break; sleep 0.2; done
rss_kb() { awk '/VmRSS/{print $2}' /proc/$PID/status; }
echo "start rss_kb $(rss_kb)" > "$OUT/rss.txt"
build/release/hearth-bot --host 127.0.0.1 --port $GAME --bots "$BOTS" --zone 1 --bots-per-account 5 \
  --api "http://127.0.0.1:$HTTP" --admin-token rssrun --setup-timeout 120 --quiet --json --prefix rss \
  --moving "${MOVING:-2000}" --move-hz 10 --spread 2000 --server-pid $PID --duration "${DURATION:-100}" \
  > "$OUT/bot.json" 2> "$OUT/bot.err" &
BOT=$!
sleep "${AT:-80}"  # a point in the steady state, not a synchronisation
echo "steady rss_kb $(rss_kb)" >> "$OUT/rss.txt"
gdb -p $PID -batch -ex 'call (void)malloc_stats()' -ex 'call (int)malloc_trim(0)' > "$OUT/gdb.out" 2>&1
echo "after_trim rss_kb $(rss_kb)" >> "$OUT/rss.txt"
wait $BOT
cat "$OUT/rss.txt"
jq -c '{in_world_at_end, server_rss_bytes_per_bot}' "$OUT/bot.json"
grep -A2 -E "^(Arena [0-9]+|Total \(incl. mmap\)):" "$OUT/server.log"
