#!/usr/bin/env bash
# HunterPie push fan-out: Hearth against a Node.js server on `ws` doing the same job
# (bench/baseline/hunterpie-node), same workload, same machine. See docs/benchmarks.md, "HunterPie
# push fan-out vs a Node.js ws server".
#
# Builds nothing: it runs build/release/hearth and build/release/hearth-bench (hearth-bench lands
# next to hearth in the build directory), or the programs named by HEARTH and HEARTH_BENCH. It
# runs `npm ci` in bench/baseline/hunterpie-node when its node_modules is missing.
#
# For each workload and each of RUNS rounds it starts a fresh Hearth (HunterPie front-end on, no
# message rate limit) and a fresh Node server, one after the other, and runs the same
# `hearth-bench hunterpie-member --compression --server-pid PID` against each. The server's CPU
# time is utime + stime from /proc/PID/stat, read by hearth-bench at the start and the end of its
# measured window (the same method for both servers; for Node it includes libuv's threads, where
# `ws` deflates). The ratio of a round compares the two runs of that round, so drifting load on a
# shared machine affects both sides alike. It prints each run, then per workload the median and
# range of deliveries per server CPU-second for both servers and of the ratio.
#
# Environment (defaults in brackets):
#   HEARTH, HEARTH_BENCH     the programs [build/release/hearth, build/release/hearth-bench]
#   RUNS                     rounds per workload [3]
#   DURATION                 seconds of each measured window [20]
#   WORKLOADS                which workloads, space-separated [plugin fast]
#                              plugin: PLUGIN_SESSIONS sessions of 1 leader + MEMBERS members, a
#                                      push every 150 ms (the plugin's pace)
#                              staggered: plugin, the leaders' pushes spread evenly over the
#                                      150 ms instead of all at once (independent players)
#                              fast:   FAST_SESSIONS sessions, pushes as fast as --window allows
#   PLUGIN_SESSIONS [100]  FAST_SESSIONS [10]  MEMBERS [3]  SIZE (push bytes) [2048]
#   PORT                     first port used [15800]; Hearth's HTTP listener uses PORT+1
#   OUT                      directory for the JSON reports and server logs [a new temp dir]
#   EXTRA_BENCH_ARGS         more hearth-bench flags (e.g. --threads 2)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NODE_DIR="$ROOT/bench/baseline/hunterpie-node"
HEARTH=${HEARTH:-$ROOT/build/release/hearth}
HEARTH_BENCH=${HEARTH_BENCH:-$ROOT/build/release/hearth-bench}
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
WORKLOADS=${WORKLOADS:-plugin fast}
PLUGIN_SESSIONS=${PLUGIN_SESSIONS:-100}
FAST_SESSIONS=${FAST_SESSIONS:-10}
MEMBERS=${MEMBERS:-3}
SIZE=${SIZE:-2048}
PORT=${PORT:-15800}
EXTRA_BENCH_ARGS=${EXTRA_BENCH_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/hunterpie-comparison.XXXXXX)}
mkdir -p "$OUT"

for program in "$HEARTH" "$HEARTH_BENCH"; do
    if [[ ! -x "$program" ]]; then
        echo "missing $program: build it first (cmake --preset release && cmake --build build/release --target hearth hearth-bench), or set HEARTH / HEARTH_BENCH" >&2
        exit 2
    fi
done
command -v node >/dev/null || { echo "node is not installed" >&2; exit 2; }
if [[ ! -d "$NODE_DIR/node_modules/ws" ]]; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund >&2)
fi

# shellcheck source=bench/lib/server.sh
source "$ROOT/bench/lib/server.sh"

start_hearth() {  # log file
    local data
    data=$(mktemp -d "$OUT/hearth-data.XXXXXX")
    HEARTH_HUNTERPIE__ENABLED=true HEARTH_HUNTERPIE__LISTEN="127.0.0.1:$PORT" \
        HEARTH_HTTP__LISTEN="127.0.0.1:$((PORT + 1))" HEARTH_SERVER__DATA_DIR="$data" \
        HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 "$HEARTH" serve >"$1" 2>&1 &
    SERVER_PID=$!
    wait_for_port "$PORT"
}

start_node() {  # log file
    node "$NODE_DIR/server.js" "$PORT" 127.0.0.1 >"$1" 2>&1 &
    SERVER_PID=$!
    wait_for_port "$PORT"
}

workload_args() {  # workload
    case "$1" in
        plugin) echo "--sessions $PLUGIN_SESSIONS --members $MEMBERS --size $SIZE --interval-ms 150" ;;
        staggered) echo "--sessions $PLUGIN_SESSIONS --members $MEMBERS --size $SIZE --interval-ms 150 --stagger" ;;
        fast) echo "--sessions $FAST_SESSIONS --members $MEMBERS --size $SIZE --interval-ms 0" ;;
        *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
}

echo "# results in $OUT; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for workload in $WORKLOADS; do
    args=$(workload_args "$workload")
    for run in $(seq "$RUNS"); do
        for server in hearth node; do
            report="$OUT/$workload-$run-$server.json"
            "start_$server" "$OUT/$workload-$run-$server.log"
            sleep 0.5
            # shellcheck disable=SC2086  # word splitting wanted
            "$HEARTH_BENCH" hunterpie-member --url "ws://127.0.0.1:$PORT/connect" $args \
                --compression --duration "$DURATION" --server-pid "$SERVER_PID" --json \
                $EXTRA_BENCH_ARGS | tail -n 1 >"$report"
            stop_server
            jq -r --arg w "$workload" --arg r "$run" --arg s "$server" '
                "\($w) run \($r) \($s): delivered \(.pushes_delivered) of \(.pushes_expected), " +
                "server CPU \(.server_cpu_s) s, \(.deliveries_per_server_cpu_s) deliveries per " +
                "server CPU-s, client CPU \(.client_cpu_s) s, p50/p99 \(.latency_us.p50)/" +
                "\(.latency_us.p99) us, errors \(.errors), compression on " +
                "\(.compression_negotiated)/\(.connections_opened)" +
                (if (.notes | length) > 0 then ", notes: \(.notes | join("; "))" else "" end)
            ' "$report"
        done
    done
done

# The summary: medians and ranges; the ratio per round.
echo
echo "| workload | server | deliveries (median) | delivered/expected | server CPU s (median) | deliveries per server CPU-s: median [min - max] |"
echo "|---|---|---|---|---|---|"
for workload in $WORKLOADS; do
    for server in hearth node; do
        jq -s -r --arg w "$workload" --arg s "$server" '
            def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                               else (.[length / 2 - 1] + .[length / 2]) / 2 end;
            def fmt: (. * 100 | round / 100) | tostring;
            ([.[].deliveries_per_server_cpu_s]) as $d
            | "| \($w) | \($s) | \([.[].pushes_delivered] | median | round) | " +
              "\([.[].pushes_delivered] | add) / \([.[].pushes_expected] | add) | " +
              "\([.[].server_cpu_s] | median | fmt) | " +
              "\($d | median | round) [\($d | min | round) - \($d | max | round)] |"
        ' "$OUT/$workload"-*-"$server".json
    done
done
echo
echo "| workload | Hearth / Node, deliveries per server CPU-s: median [min - max] of the rounds |"
echo "|---|---|"
for workload in $WORKLOADS; do
    ratios=()
    for run in $(seq "$RUNS"); do
        ratios+=("$(jq -s '(.[0].deliveries_per_server_cpu_s / .[1].deliveries_per_server_cpu_s)' \
            "$OUT/$workload-$run-hearth.json" "$OUT/$workload-$run-node.json")")
    done
    printf '%s\n' "${ratios[@]}" | jq -s -r --arg w "$workload" '
        def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def fmt: (. * 10 | round / 10) | tostring;
        "| \($w) | **\(median | fmt)x** [\(min | fmt) - \(max | fmt)] (target: 10x) |"'
done
