#!/usr/bin/env bash
# Reruns every measurement of docs/benchmarks.md in one go, each with the command documented
# there, and writes a results file: the date, the commit, and under each section the commands as
# run with their figures. For a before/after comparison, run it on both trees in the same session
# (the machine's load drifts between sessions).
#
#   bench/run-all.sh            # full: the documented durations and rounds (about half an hour)
#   bench/run-all.sh --quick    # the same commands, shorter (about 3 minutes): a check
#                               # that everything runs, figures rough
#
# Builds the Release tree first (`cmake --preset release`, then hearth, hearth-bench and
# hearth-microbench with -j2) unless HEARTH is set. Every server is a fresh `hearth serve` on
# loopback with its own data directory under OUT, configured through HEARTH_* variables as the
# section in docs/benchmarks.md says. A section that fails is recorded as failed and the others
# still run.
#
# Environment (defaults in brackets):
#   HEARTH, HEARTH_BENCH, MICROBENCH   the programs [build/release/...]
#   SECTIONS     which sections, space-separated [micro echo idle fanout-fast fanout-latency hub
#                mailboxes homestead hunterpie dracosoft moonshare uws]
#   OUT          directory for reports and server logs [a new temp dir]
#   RESULTS      the results file [$OUT/results.md]
#   PORT         first port used [18100]
# Sections that drive a baseline (hunterpie, uws) run their own scripts:
# bench/baseline/run-hunterpie-comparison.sh and bench/baseline/uws/run.sh.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=full
for arg in "$@"; do
    case "$arg" in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument $arg (--quick or --full)" >&2; exit 2 ;;
    esac
done

BUILD=1
[[ -n "${HEARTH:-}" ]] && BUILD=0
HEARTH=${HEARTH:-$ROOT/build/release/hearth}
HEARTH_BENCH=${HEARTH_BENCH:-$(dirname "$HEARTH")/hearth-bench}
MICROBENCH=${MICROBENCH:-$(dirname "$HEARTH")/bench/hearth-microbench}
SECTIONS=${SECTIONS:-micro echo idle fanout-fast fanout-latency hub mailboxes homestead hunterpie dracosoft moonshare uws}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/hearth-run-all.XXXXXX")}
RESULTS=${RESULTS:-$OUT/results.md}
PORT=${PORT:-18100}
mkdir -p "$OUT"

# The knobs that differ between the modes: the documented values, and shorter ones.
if [[ $MODE == full ]]; then
    MICRO_MIN_TIME=0.2 HUB_MIN_TIME=0.5 MAILBOX_MIN_TIME=1 MAILBOX_REPS=3
    ECHO_ROUNDS=3 ECHO_S=10 IDLE_COUNT=19000 IDLE_HOLD=10 IDLE_ROUNDS=2
    FANOUT_S=10 LATENCY_S=8 HOMESTEAD_S=8
    HP_ENV=(RUNS=5 DURATION=20 WORKLOADS="plugin staggered fast")
    DRACO_CLIENTS=50 DRACO_BIG=200 DRACO_S=20 DRACO_LOGIN_S=5 DRACO_FAST_S=10 DRACO_FAST_ROUNDS=3
    MOON_S=10
    UWS_ENV=(RUNS=5 DURATION=10)
else
    MICRO_MIN_TIME=0.05 HUB_MIN_TIME=0.1 MAILBOX_MIN_TIME=0.2 MAILBOX_REPS=1
    ECHO_ROUNDS=1 ECHO_S=3 IDLE_COUNT=5000 IDLE_HOLD=2 IDLE_ROUNDS=1
    FANOUT_S=3 LATENCY_S=3 HOMESTEAD_S=3
    HP_ENV=(RUNS=1 DURATION=5 WORKLOADS="plugin fast")
    DRACO_CLIENTS=10 DRACO_BIG=50 DRACO_S=3 DRACO_LOGIN_S=2 DRACO_FAST_S=3 DRACO_FAST_ROUNDS=1
    MOON_S=3
    UWS_ENV=(RUNS=1 DURATION=3 IDLE_COUNT=5000 HOLD=2)
fi

if [[ $BUILD == 1 ]]; then
    (cd "$ROOT" && cmake --preset release >/dev/null &&
        cmake --build --preset release -j2 --target hearth hearth-bench hearth-microbench) >&2 ||
        { echo "the Release build failed" >&2; exit 2; }
fi
for program in "$HEARTH" "$HEARTH_BENCH" "$MICROBENCH"; do
    [[ -x "$program" ]] || { echo "missing $program (set HEARTH / HEARTH_BENCH / MICROBENCH)" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "jq is not installed" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)")
{
    echo "# Benchmarks rerun ($MODE mode)"
    echo
    echo "Date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $COMMIT$DIRTY, $(nproc) cores, load average at the start $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Commands as run (\`hearth-bench\` is $HEARTH_BENCH); each figure follows its command. Server logs and JSON reports: $OUT."
} >"$RESULTS"

say() { printf '%s\n' "$*" >>"$RESULTS"; }
section() { say ""; say "## $1"; say ""; echo "== $1 ($(date +%H:%M:%S))" >&2; }

# --- servers ---------------------------------------------------------------------------------
# shellcheck source=bench/lib/server.sh
source "$ROOT/bench/lib/server.sh"

# start_server NAME PORT_TO_WAIT_FOR VAR=VALUE...: a fresh hearth with its own data directory.
start_server() {
    local name=$1 wait_port=$2
    shift 2
    local data="$OUT/data-$name"
    rm -rf "$data"
    mkdir -p "$data"
    env HEARTH_SERVER__DATA_DIR="$data" "$@" "$HEARTH" serve >"$OUT/$name.log" 2>&1 &
    SERVER_PID=$!
    wait_for_port "$wait_port" || return 1
    sleep 0.5
    say "Server: \`$(printf '%s ' "$@")hearth serve\`"
    say ""
}

RUN_NO=0
# bench NAME KEY... -- ARGS...: runs hearth-bench ARGS --server-pid --json, records the command and
# the report's values of KEY... (latency objects as p50 / p99 / max, in microseconds).
bench() {
    local name=$1
    shift
    local keys=()
    while [[ $# -gt 0 && $1 != -- ]]; do
        keys+=("$1")
        shift
    done
    shift
    RUN_NO=$((RUN_NO + 1))
    local report="$OUT/$RUN_NO-$name.json"
    "$HEARTH_BENCH" "$@" --server-pid "$SERVER_PID" --json 2>"$OUT/$RUN_NO-$name.err" |
        tail -n 1 >"$report"
    local status=${PIPESTATUS[0]}
    say "- \`hearth-bench $*\`"
    if ! jq -e . "$report" >/dev/null 2>&1; then
        say "  - **no report** (exit status $status; see $OUT/$RUN_NO-$name.err)"
        return 1
    fi
    keys+=(errors notes)
    say "  - $(jq -r '. as $r | [$ARGS.positional[] | select($r[.] != null and $r[.] != []) |
        "\(.) " + ($r[.] | if type == "object" and has("p50")
                           then "p50 \(.p50) / p99 \(.p99) / max \(.max)"
                           elif type == "array" then join("; ")
                           elif type == "object" then tojson else tostring end)] | join(", ")' \
        "$report" --args "${keys[@]}")"
    LAST_REPORT=$report
}

LAST_REPORT=
failed() { say "- **failed**: $*"; echo "failed: $*" >&2; }

# --- sections, in the order of docs/benchmarks.md -------------------------------------------------

run_micro() {
    section "Micro-benchmarks (Google Benchmark)"
    local cmd=(--benchmark_min_time="$MICRO_MIN_TIME" --benchmark_out="$OUT/micro.json"
        --benchmark_out_format=json)
    "$MICROBENCH" "${cmd[@]}" >"$OUT/micro.txt" 2>&1 || { failed "hearth-microbench"; return; }
    say "\`hearth-microbench --benchmark_min_time=$MICRO_MIN_TIME\`"
    say ""
    micro_table "$OUT/micro.json"
}

micro_table() {  # benchmark json
    say "| benchmark | time per op | CPU per op | counters |"
    say "|---|---|---|---|"
    jq -r '.benchmarks[] | "| `\(.name)` | \(.real_time | . * 100 | round / 100) \(.time_unit) | " +
        "\(.cpu_time | . * 100 | round / 100) \(.time_unit) | " +
        ([to_entries[] | select(.value | type == "number")
          | select(.key | IN("real_time", "cpu_time", "iterations", "repetitions", "repetition_index",
                              "threads", "family_index", "per_family_instance_index") | not)
          | "\(.key) \(.value | if . > 100 then round else . * 100 | round / 100 end)"] | join(", ")) + " |"' \
        "$1" >>"$RESULTS"
}

run_echo() {
    section "Load generator: echo, 100 connections, 100-byte messages"
    start_server echo "$PORT" HEARTH_HTTP__ECHO_ROUTE=true HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" \
        HEARTH_SERVER__IO_THREADS=1 HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 || { failed "server"; return; }
    for _ in $(seq "$ECHO_ROUNDS"); do
        bench echo delivered deliveries_per_s server_cpu_s round_trips_per_server_cpu_s client_cpu_s \
            latency_us -- echo --url "ws://127.0.0.1:$PORT/echo" --connections 100 --size 100 \
            --duration "$ECHO_S"
    done
    stop_server
}

run_idle() {
    section "Load generator: $IDLE_COUNT idle connections"
    for round in $(seq "$IDLE_ROUNDS"); do
        # No first-message deadline: idle echo connections send nothing, and the full run's hold
        # (10 s) reaches the default deadline.
        start_server "idle-$round" "$PORT" HEARTH_HTTP__ECHO_ROUTE=true \
            HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" HEARTH_SERVER__IO_THREADS=1 \
            HEARTH_WEBSOCKET__FIRST_MESSAGE_TIMEOUT_MS=0 || { failed "server"; return; }
        bench idle opened open_at_end server_rss_before_bytes server_rss_after_connect_bytes \
            server_rss_bytes_per_connection elapsed_s handshakes_per_server_cpu_s -- connections \
            --url "ws://127.0.0.1:$PORT/echo" --count "$IDLE_COUNT" --hold "$IDLE_HOLD"
        stop_server
    done
}

# The native protocol refuses clients without a hello since the fan-out figures were taken, and
# the documented commands send none: these servers allow anonymous clients, as those runs had.
run_fanout_fast() {
    section "Load generator: fan-out, 1 publisher to 1,000 subscribers, as fast as possible"
    start_server fanout "$PORT" HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" \
        HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 HEARTH_NATIVE__ALLOW_ANONYMOUS=true || { failed "server"; return; }
    bench fanout delivered deliveries_per_s server_cpu_s deliveries_per_server_cpu_s \
        -- fanout --url "ws://127.0.0.1:$PORT/ws" --publishers 1 --subscribers 1000 --size 100 \
        --duration "$FANOUT_S"
    stop_server
}

run_fanout_latency() {
    section "Load generator: delivery latency at 50,000 deliveries/s"
    start_server latency "$PORT" HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" \
        HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 HEARTH_NATIVE__ALLOW_ANONYMOUS=true || { failed "server"; return; }
    local n r extra
    for spec in "100 500" "250 200" "1000 50" "1000 50 --threads 2"; do
        read -r n r extra <<<"$spec"
        # shellcheck disable=SC2086  # extra flags split
        bench latency delivered latency_us deliveries_per_server_cpu_s publish_skipped -- fanout \
            --url "ws://127.0.0.1:$PORT/ws" --publishers 1 --subscribers "$n" --rate "$r" \
            --size 100 --duration "$LATENCY_S" $extra
    done
    stop_server
}

run_hub() {
    section "Hub without sockets"
    "$MICROBENCH" --benchmark_filter=Hub --benchmark_min_time="$HUB_MIN_TIME" \
        --benchmark_out="$OUT/hub.json" --benchmark_out_format=json >"$OUT/hub.txt" 2>&1 ||
        { failed "hearth-microbench"; return; }
    say "\`hearth-microbench --benchmark_filter=Hub --benchmark_min_time=$HUB_MIN_TIME\`"
    say ""
    micro_table "$OUT/hub.json"
}

run_mailboxes() {
    section "Durable mailboxes (SQLite, group commit)"
    local args=(--benchmark_filter=BM_MailboxAppend --benchmark_min_time="$MAILBOX_MIN_TIME"
        --benchmark_repetitions="$MAILBOX_REPS" --benchmark_report_aggregates_only=true)
    (cd "$OUT" && "$MICROBENCH" "${args[@]}" --benchmark_out="$OUT/mailboxes.json" \
        --benchmark_out_format=json >"$OUT/mailboxes.txt" 2>&1) || { failed "hearth-microbench"; return; }
    say "\`hearth-microbench ${args[*]}\`"
    say ""
    micro_table "$OUT/mailboxes.json"
}

run_homestead() {
    section "Homestead relay with acknowledgements"
    start_server homestead $((PORT + 1)) HEARTH_HOMESTEAD__ENABLED=true \
        HEARTH_HOMESTEAD__LISTEN="127.0.0.1:$((PORT + 1))" HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" \
        HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 HEARTH_WEBSOCKET__MAX_BYTES_PER_S=0 \
        || { failed "server"; return; }
    local url="ws://127.0.0.1:$((PORT + 1))/sync?api_key=gateway"
    local keys=(sent acks_completed acks_per_s server_cpu_s messages_per_server_cpu_s latency_us)
    bench homestead-mod "${keys[@]}" -- homestead-mod --url "$url" --mods 10 --duration "$HOMESTEAD_S"
    bench homestead-mod "${keys[@]}" -- homestead-mod --url "$url" --mods 10 --rate 1000 --duration "$HOMESTEAD_S"
    bench homestead-bot "${keys[@]}" -- homestead-bot --url "$url" --mods 10 --duration "$HOMESTEAD_S"
    stop_server
}

run_hunterpie() {
    section "HunterPie push fan-out vs a Node.js ws server"
    say "\`${HP_ENV[*]} bench/baseline/run-hunterpie-comparison.sh\`"
    say ""
    env "${HP_ENV[@]}" HEARTH="$HEARTH" HEARTH_BENCH="$HEARTH_BENCH" OUT="$OUT/hunterpie" \
        PORT=$((PORT + 10)) "$ROOT/bench/baseline/run-hunterpie-comparison.sh" >"$OUT/hunterpie.txt" 2>&1 ||
        { failed "run-hunterpie-comparison.sh (see $OUT/hunterpie.txt)"; return; }
    # Its tables, a blank line between them.
    awk '/^\|/ { print; table = 1; next } table { print ""; table = 0 }' "$OUT/hunterpie.txt" >>"$RESULTS"
}

run_dracosoft() {
    section "DracoSoft login and chat"
    local draco=$((PORT + 2))
    # Every client comes from one address, as no players do: the registration limits, the
    # registrations' share of the hashing queue and the login throttle's attempts checked at once
    # per address (which postdate the documented runs) are raised, for benchmarks only.
    local limits=(HEARTH_AUTH__REGISTRATIONS_PER_ADDRESS_PER_HOUR=1000000
        HEARTH_AUTH__REGISTRATIONS_PER_DOOR_PER_MINUTE=1000000
        HEARTH_AUTH__MAX_PENDING_REGISTRATION_HASHES=64 HEARTH_AUTH__THROTTLE_FREE_FAILURES=1000
        HEARTH_DRACOSOFT__ENABLED=true
        HEARTH_DRACOSOFT__LISTEN="127.0.0.1:$draco" HEARTH_HTTP__LISTEN="127.0.0.1:$PORT")
    local auth_keys=(logged_in auth_refused auth_s auth_per_s auth_server_cpu_s auth_per_server_cpu_s
        register_latency_ms login_latency_ms)
    local chat_keys=(chats_sent chat_deliveries deliveries_expected deliveries_per_s server_cpu_s
        deliveries_per_server_cpu_s latency_us)
    local url="tcp://127.0.0.1:$draco"

    say "Default argon2id cost:"
    say ""
    start_server draco-default "$draco" "${limits[@]}" || { failed "server"; return; }
    bench draco-both run_id "${auth_keys[@]}" "${chat_keys[@]}" -- dracosoft-chat --url "$url" \
        --clients "$DRACO_CLIENTS" --auth both --rate 1 --duration "$DRACO_S"
    local run_id
    run_id=$(jq -r '.run_id // empty' "$LAST_REPORT" 2>/dev/null)
    if [[ -n "$run_id" ]]; then
        for c in 16 1; do
            bench draco-login "${auth_keys[@]}" -- dracosoft-chat --url "$url" --clients "$DRACO_CLIENTS" \
                --auth login --run-id "$run_id" --auth-concurrency "$c" --rate 1 --duration "$DRACO_LOGIN_S"
        done
    fi
    stop_server

    say ""
    say "Lowest argon2id cost (for benchmarks only), no message or byte rate limit:"
    say ""
    start_server draco-low "$draco" "${limits[@]}" HEARTH_AUTH__PASSWORD_OPS_LIMIT=1 \
        HEARTH_AUTH__PASSWORD_MEM_LIMIT_KIB=8 HEARTH_DRACOSOFT__MAX_MESSAGES_PER_S=0 \
        HEARTH_DRACOSOFT__MAX_BYTES_PER_S=0 || { failed "server"; return; }
    bench draco-low-both "${auth_keys[@]}" "${chat_keys[@]}" -- dracosoft-chat --url "$url" \
        --clients "$DRACO_CLIENTS" --auth both --rate 1 --duration "$DRACO_S"
    bench draco-low-big "${chat_keys[@]}" -- dracosoft-chat --url "$url" --clients "$DRACO_BIG" \
        --auth register --rate 1 --duration "$DRACO_S"
    for _ in $(seq "$DRACO_FAST_ROUNDS"); do
        bench draco-fast "${chat_keys[@]}" client_cpu_s -- dracosoft-chat --url "$url" \
            --clients "$DRACO_CLIENTS" --rate 0 --duration "$DRACO_FAST_S"
    done
    stop_server
}

run_moonshare() {
    section "Moonshare file relay"
    local p=$((PORT + 20))
    start_server moonshare $((p + 3)) HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" \
        HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 HEARTH_MOONSHARE__ENABLED=true \
        HEARTH_MOONSHARE__TOKEN_LISTEN="127.0.0.1:$((p + 3))" \
        HEARTH_MOONSHARE__AUTH_LISTEN="127.0.0.1:$((p + 4))" \
        HEARTH_MOONSHARE__PLAYER_LISTEN="[\"127.0.0.1:$p\", \"127.0.0.1:$((p + 1))\", \"127.0.0.1:$((p + 2))\"]" \
        HEARTH_MOONSHARE__GATEWAY_LISTEN="127.0.0.1:$((p + 5))" \
        HEARTH_MOONSHARE__MAX_CONCURRENT_UPLOADS=128 HEARTH_MOONSHARE__TOKEN_REQUESTS_PER_IP_PER_MIN=0 \
        HEARTH_MOONSHARE__MAX_PLAYERS_PER_ADDRESS=0 HEARTH_MOONSHARE__MAX_UPLOADS_PER_ADDRESS=0 \
        HEARTH_MOONSHARE__MAX_BINDINGS_PER_ADDRESS=0 || { failed "server"; return; }
    local spec players size
    for spec in "10 1048576" "2 16777216" "100 100000"; do
        read -r players size <<<"$spec"
        bench moonshare files_received files_failed mb_per_s mb_per_server_cpu_s \
            files_per_server_cpu_s server_rss_bytes latency_us -- moonshare-player \
            --url "ws://127.0.0.1:$p/player" --token-url "http://127.0.0.1:$((p + 3))" \
            --instance-ports "$p,$((p + 1)),$((p + 2))" --players "$players" --file-size "$size" \
            --duration "$MOON_S"
    done
    stop_server
}

run_uws() {
    section "uWebSockets side by side (issue 18)"
    say "\`${UWS_ENV[*]} bench/baseline/uws/run.sh\`"
    say ""
    env "${UWS_ENV[@]}" HEARTH="$HEARTH" HEARTH_BENCH="$HEARTH_BENCH" OUT="$OUT/uws" \
        PORT=$((PORT + 30)) "$ROOT/bench/baseline/uws/run.sh" >"$OUT/uws.txt" 2>&1 ||
        { failed "bench/baseline/uws/run.sh (see $OUT/uws.txt)"; return; }
    cat "$OUT/uws/summary.md" >>"$RESULTS"
}

for s in $SECTIONS; do
    fn="run_${s//-/_}"
    if ! declare -F "$fn" >/dev/null; then
        echo "unknown section $s" >&2
        exit 2
    fi
    "$fn" || failed "section $s"
    stop_server
done
say ""
say "Load average at the end $(cut -d' ' -f1-3 /proc/loadavg); finished $(date -u '+%H:%M UTC')."
echo "results: $RESULTS" >&2
