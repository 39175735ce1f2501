#!/usr/bin/env bash
# Formats (or with --check, verifies the format of) every C++ file the repository tracks.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(-i)
if [ "${1:-}" = "--check" ]; then
    mode=(--dry-run --Werror)
fi
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.cpp' '*.hpp' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
[ ${#files[@]} -eq 0 ] && exit 0
if ! clang-format-16 "${mode[@]}" "${files[@]}"; then
    echo "Formatting differs from .clang-format: run 'make format'." >&2
    exit 1
fi
