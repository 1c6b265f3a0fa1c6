#!/usr/bin/env bash
# scripts/npm-deps.sh — install the Node.js test harness dependencies (test/js) when needed.
#
# Runs `npm ci --no-audit --no-fund` in test/js if node_modules is missing, or if package.json /
# package-lock.json is newer than the last successful install. Prints the node_modules path on
# stdout (logs go to stderr). Go tests find socket.io-client under test/js/node_modules.
#
#   ROOMLOG_SKIP_NPM=1   do nothing (e.g. offline, and you don't need the JS tests)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
JS_DIR="$REPO_ROOT/test/js"
MODULES="$JS_DIR/node_modules"
STAMP="$MODULES/.roomlog-npm-ci.stamp"

log() { printf 'npm-deps: %s\n' "$*" >&2; }

if [[ "${ROOMLOG_SKIP_NPM:-}" == 1 ]]; then
	log "ROOMLOG_SKIP_NPM=1; skipping"
	echo "$MODULES"
	exit 0
fi

command -v npm >/dev/null 2>&1 || {
	log "ERROR: npm not found on PATH (Node.js 20+ is needed for the Socket.IO client tests)"
	exit 1
}
[[ -f "$JS_DIR/package-lock.json" ]] || {
	log "ERROR: $JS_DIR/package-lock.json missing; run 'npm install' in test/js and commit the lock file"
	exit 1
}

need=""
if [[ ! -d "$MODULES" ]]; then
	need="node_modules missing"
elif [[ ! -f "$STAMP" ]]; then
	need="no record of a completed install"
elif [[ "$JS_DIR/package-lock.json" -nt "$STAMP" || "$JS_DIR/package.json" -nt "$STAMP" ]]; then
	need="package-lock.json/package.json changed"
fi

if [[ -n "$need" ]]; then
	log "$need; running npm ci in $JS_DIR"
	(cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
	touch "$STAMP"
else
	log "up to date"
fi
log "node modules: $MODULES"
echo "$MODULES"
