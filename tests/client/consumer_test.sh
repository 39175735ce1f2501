#!/usr/bin/env bash
# Builds tests/client/consumer, a project of its own, against clients/cpp both ways a game would:
# installed and found with find_package(hearth_client), and with add_subdirectory. Then runs it.
# Usage: consumer_test.sh SOURCE_ROOT CMAKE [COMPILER [LAUNCHER]]
set -euo pipefail
root=$1
cmake=$2
compiler=${3:-}
launcher=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

common=(-DCMAKE_BUILD_TYPE=Release)
[ -n "$compiler" ] && common+=("-DCMAKE_CXX_COMPILER=$compiler")
[ -n "$launcher" ] && common+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$launcher")

echo "== install the library"
"$cmake" -S "$root/clients/cpp" -B "$work/lib" "${common[@]}" -DHEARTH_CLIENT_EXAMPLES=OFF >/dev/null
"$cmake" --build "$work/lib" -j2 >/dev/null
"$cmake" --install "$work/lib" --prefix "$work/prefix" >/dev/null

echo "== find_package(hearth_client)"
"$cmake" -S "$root/tests/client/consumer" -B "$work/found" "${common[@]}" \
    -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
"$cmake" --build "$work/found" -j2 >/dev/null
"$work/found/consumer"

echo "== add_subdirectory(clients/cpp)"
"$cmake" -S "$root/tests/client/consumer" -B "$work/sub" "${common[@]}" \
    -DHEARTH_CLIENT_VIA=add_subdirectory -DHEARTH_CLIENT_DIR="$root/clients/cpp" >/dev/null
"$cmake" --build "$work/sub" -j2 >/dev/null
"$work/sub/consumer"
