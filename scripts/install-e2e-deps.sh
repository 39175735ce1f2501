#!/usr/bin/env bash
# Installs the npm packages of the browser tests (tests/e2e: playwright-core, pinned by
# package-lock.json) with `npm ci`, when node_modules is missing or older than the lock file.
# Run by ctest as the setup of the e2e tests (fixture e2e.npm); the browser itself is Debian's
# chromium, installed by scripts/install-deps.sh.
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/e2e" && pwd)"
stamp="$dir/node_modules/.package-lock.json"  # written by npm ci/install

if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: run scripts/install-deps.sh" >&2
    exit 1
fi
if [ -f "$stamp" ] && [ -d "$dir/node_modules/playwright-core" ] &&
    [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
    exit 0
fi
echo "installing the e2e test packages in $dir (npm ci)" >&2
cd "$dir"
# Playwright's own browser downloads are never used: the tests drive /usr/bin/chromium.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
