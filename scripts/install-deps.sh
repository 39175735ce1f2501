#!/usr/bin/env bash
# Installs the Debian 12 packages Hearth needs to build and test, when they are missing.
# As root it runs apt-get; as anyone else it prints the exact command and stops, so that a
# developer is never surprised by a sudo prompt in the middle of a build.
set -euo pipefail

packages=(
    # toolchain
    g++ cmake ninja-build ccache pkg-config make clang-format-16
    # libraries (Boost 1.81 component packages: libboost-dev is 1.74 and conflicts)
    libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
    libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
    libsqlite3-dev libsodium-dev libssl-dev zlib1g-dev libsimdjson-dev
    # PostgreSQL: the client library for [storage] driver = "postgres", and the server the
    # store tests start on loopback by themselves
    libpq-dev postgresql
    # tests and benchmarks
    libgtest-dev libgmock-dev libbenchmark-dev openssl
    # the layers check (scripts/check_layers.py)
    python3
    # the browser test of /logs.html (headless Chromium driven by playwright-core from npm) and
    # the Node.js baseline of the HunterPie benchmark
    chromium fonts-liberation
)
# `make fuzz` alone needs clang and its libFuzzer runtime: asked for with --fuzz.
if [ "${1:-}" = "--fuzz" ]; then
    packages+=(clang-14 libclang-rt-14-dev)
fi
# Node.js and npm: the machine's own when it has them (a NodeSource nodejs bundles npm and
# conflicts with Debian's npm package), else Debian's.
if ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "Hearth needs these Debian packages: ${missing[*]}" >&2
    echo "Install them with:" >&2
    echo "    sudo apt-get update && sudo $cmd" >&2
    exit 1
fi

echo "Installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; refresh them only when the install needs it.
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
