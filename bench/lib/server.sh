# Shared by the benchmark scripts (sourced): the one server a script runs at a time, in
# $SERVER_PID, stopped on exit.

SERVER_PID=
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# Waits (up to 15 s) until something accepts on 127.0.0.1:PORT; fails when the server exited.
wait_for_port() {  # port
    for _ in $(seq 150); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited at startup" >&2; return 1; }
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}
