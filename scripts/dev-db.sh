#!/usr/bin/env bash
# scripts/dev-db.sh — find or start a PostgreSQL server for local development and tests.
#
# Usage:
#   scripts/dev-db.sh [url]     print a DATABASE_URL for the `roomlog` database (default)
#   scripts/dev-db.sh test-url  print the admin URL (database `postgres`) on the same server;
#                               tests create their own per-test databases from it
#   scripts/dev-db.sh stop      stop the private cluster in .pgdata if it is running
#                               (never touches any other server)
#   scripts/dev-db.sh status    report which server would be used (on stderr)
#
# Only the URL is written to stdout (as the last and only line); everything else goes to stderr,
# so `DATABASE_URL=$(scripts/dev-db.sh)` is safe.
#
# Resolution order for url/test-url:
#   1. $TEST_DATABASE_URL (test-url only) or $DATABASE_URL, if set: verified with psql, then echoed.
#      For test-url, a DATABASE_URL of the form postgres://…/<db>?… is rewritten to …/postgres?….
#   2. A server already answering on 127.0.0.1:5432 (user postgres, trust auth); database
#      `roomlog` is created if missing.
#   3. A private cluster in <repo>/.pgdata (initdb on first use), listening on 127.0.0.1:54329
#      only, unix socket inside .pgdata, server log in .pgdata/log.
#
# Environment knobs:
#   ROOMLOG_FORCE_PRIVATE_PG=1  skip steps 1 and 2 and always use the private cluster
#   ROOMLOG_PGDATA=<dir>        private cluster data directory (default <repo>/.pgdata)
#   ROOMLOG_PG_PORT=<port>      private cluster port (default 54329)
#   ROOMLOG_PG_OS_USER=<user>   unprivileged OS user that owns/runs the private cluster when this
#                               script runs as root (default: postgres)
#   ROOMLOG_PG_CREATE_USER=1    as root, create that OS user (system account) if it is missing;
#                               implied when CI=true
set -euo pipefail

MODE="${1:-url}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PGDATA_DIR="${ROOMLOG_PGDATA:-$REPO_ROOT/.pgdata}"
PRIVATE_PORT="${ROOMLOG_PG_PORT:-54329}"
PRIVATE_HOST=127.0.0.1
SYSTEM_HOST=127.0.0.1
SYSTEM_PORT=5432
DB_NAME=roomlog
DB_USER=postgres
PG_OS_USER="${ROOMLOG_PG_OS_USER:-postgres}"
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}"

log() { printf 'dev-db: %s\n' "$*" >&2; }
die() { printf 'dev-db: ERROR: %s\n' "$*" >&2; exit 1; }

# Keep libpq environment from redirecting our explicit connections.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS || true

# ---------------------------------------------------------------------------------------------
# Locate PostgreSQL binaries. Prefer the real bin dir of initdb (e.g. /usr/lib/postgresql/15/bin)
# so server and client tools come from the same installation.
find_pg_bin() {
	local p
	if p="$(command -v initdb 2>/dev/null)"; then
		p="$(readlink -f "$p")"
		dirname "$p"
		return 0
	fi
	# Debian/Ubuntu layout: pick the highest installed major version.
	for p in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -n -r); do
		if [[ -x "$p/initdb" ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

PG_BIN="$(find_pg_bin || true)"

pgtool() { # pgtool NAME -> absolute path of a PostgreSQL tool, or NAME if only on PATH
	local name="$1"
	if [[ -n "$PG_BIN" && -x "$PG_BIN/$name" ]]; then
		echo "$PG_BIN/$name"
	elif command -v "$name" >/dev/null 2>&1; then
		command -v "$name"
	else
		die "PostgreSQL tool '$name' not found (looked in ${PG_BIN:-<none>} and PATH); install PostgreSQL client/server packages"
	fi
}

PSQL="$(pgtool psql)"
PG_ISREADY="$(pgtool pg_isready)"

# ---------------------------------------------------------------------------------------------
# Helpers talking to a server.
is_ready() { # is_ready HOST PORT
	"$PG_ISREADY" -q -h "$1" -p "$2" -U "$DB_USER" -d postgres -t 3 >/dev/null 2>&1
}

url_works() { # url_works URL — really connects and runs a query (checks db + auth)
	"$PSQL" -X -q -A -t -d "$1" -c 'select 1' >/dev/null 2>&1
}

ensure_database() { # ensure_database HOST PORT DBNAME
	local host="$1" port="$2" db="$3" out
	if "$PSQL" -X -A -t -h "$host" -p "$port" -U "$DB_USER" -d postgres \
		-c "select 1 from pg_database where datname = '$db'" 2>/dev/null | grep -q 1; then
		return 0
	fi
	log "creating database '$db' on $host:$port"
	if ! out="$("$PSQL" -X -q -h "$host" -p "$port" -U "$DB_USER" -d postgres \
		-c "create database \"$db\"" 2>&1)"; then
		# Lost a race with a concurrent invocation? Re-check before failing.
		if "$PSQL" -X -A -t -h "$host" -p "$port" -U "$DB_USER" -d postgres \
			-c "select 1 from pg_database where datname = '$db'" 2>/dev/null | grep -q 1; then
			return 0
		fi
		printf '%s\n' "$out" >&2
		die "could not create database '$db' on $host:$port"
	fi
}

url_for() { # url_for HOST PORT DBNAME
	printf 'postgres://%s@%s:%s/%s?sslmode=disable\n' "$DB_USER" "$1" "$2" "$3"
}

# Rewrite the database name in a postgres:// or postgresql:// URL.
rewrite_url_db() { # rewrite_url_db URL DBNAME
	local url="$1" db="$2" scheme rest authority query=""
	case "$url" in
	postgres://* | postgresql://*) ;;
	*) return 1 ;;
	esac
	scheme="${url%%://*}"
	rest="${url#*://}"
	if [[ "$rest" == *\?* ]]; then
		query="?${rest#*\?}"
		rest="${rest%%\?*}"
	fi
	authority="${rest%%/*}"
	printf '%s://%s/%s%s\n' "$scheme" "$authority" "$db" "$query"
}

# ---------------------------------------------------------------------------------------------
# Private cluster management.

# Run a command as the unprivileged cluster owner when we are root; directly otherwise.
as_pg() {
	if [[ "$(id -u)" -ne 0 ]]; then
		(cd / && "$@")
		return
	fi
	if command -v runuser >/dev/null 2>&1; then
		(cd / && runuser -u "$PG_OS_USER" -- "$@")
	else
		local q
		q="$(printf '%q ' "$@")"
		(cd / && su -s /bin/sh "$PG_OS_USER" -c "$q")
	fi
}

ensure_os_user() {
	[[ "$(id -u)" -eq 0 ]] || return 0
	if id -u "$PG_OS_USER" >/dev/null 2>&1; then
		[[ "$(id -u "$PG_OS_USER")" -ne 0 ]] || die "ROOMLOG_PG_OS_USER=$PG_OS_USER is root; PostgreSQL refuses to run as root"
		return 0
	fi
	if [[ "${ROOMLOG_PG_CREATE_USER:-}" == 1 || "${CI:-}" == true ]] && command -v useradd >/dev/null 2>&1; then
		log "creating unprivileged system user '$PG_OS_USER' to own the private cluster"
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER" >&2 ||
			die "useradd $PG_OS_USER failed"
		return 0
	fi
	die "running as root, but PostgreSQL refuses to run as root and OS user '$PG_OS_USER' does not exist.
  Fix one of:
    - create it:      useradd --system --no-create-home --shell /usr/sbin/nologin $PG_OS_USER
                      (or rerun with ROOMLOG_PG_CREATE_USER=1)
    - use another:    ROOMLOG_PG_OS_USER=<unprivileged user> $0 $MODE
    - run as a normal user, or point DATABASE_URL at an existing server"
}

private_running() {
	[[ -f "$PGDATA_DIR/postmaster.pid" ]] || return 1
	# pg_ctl refuses to run as root, so ask as the cluster owner.
	as_pg "$(pgtool pg_ctl)" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

write_private_conf() {
	local sockdir="$PGDATA_DIR"
	# sun_path is limited to 107 bytes; fall back to TCP only for very deep checkouts.
	if ((${#sockdir} + ${#PRIVATE_PORT} + 12 > 100)); then
		log "data dir path too long for a unix socket; private cluster will listen on TCP only"
		sockdir=""
	fi
	local tmp
	tmp="$(mktemp)"
	cat >"$tmp" <<EOF
# Managed by scripts/dev-db.sh — rewritten on every start; edit the script instead.
listen_addresses = '$PRIVATE_HOST'
port = $PRIVATE_PORT
unix_socket_directories = '$sockdir'
fsync = on
synchronous_commit = on
max_connections = 300
shared_buffers = 256MB
EOF
	if [[ "$(id -u)" -eq 0 ]]; then
		chown "$PG_OS_USER": "$tmp"
	fi
	chmod 600 "$tmp"
	as_pg cp "$tmp" "$PGDATA_DIR/roomlog.conf"
	rm -f "$tmp"
	if ! as_pg grep -q "^include_if_exists = 'roomlog.conf'" "$PGDATA_DIR/postgresql.conf"; then
		printf "\n# roomlog dev settings (scripts/dev-db.sh)\ninclude_if_exists = 'roomlog.conf'\n" |
			as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
	fi
}

start_private() {
	local initdb pg_ctl
	initdb="$(pgtool initdb)"
	pg_ctl="$(pgtool pg_ctl)"
	ensure_os_user

	# Serialize concurrent starts (e.g. two make targets at once). Lock the script file itself so
	# no extra (un-ignored) file appears in the checkout.
	exec 9<"${BASH_SOURCE[0]}"
	if command -v flock >/dev/null 2>&1; then
		flock -w 120 9 || die "timed out waiting for another dev-db.sh to finish starting the cluster"
	fi

	if private_running && is_ready "$PRIVATE_HOST" "$PRIVATE_PORT"; then
		return 0
	fi

	if [[ ! -f "$PGDATA_DIR/PG_VERSION" ]]; then
		if [[ -d "$PGDATA_DIR" ]] && [[ -n "$(ls -A "$PGDATA_DIR" 2>/dev/null)" ]]; then
			die "$PGDATA_DIR exists, is not empty and is not a PostgreSQL data directory; remove it and retry"
		fi
		log "initializing private cluster in $PGDATA_DIR"
		mkdir -p "$PGDATA_DIR"
		if [[ "$(id -u)" -eq 0 ]]; then
			chown "$PG_OS_USER": "$PGDATA_DIR"
		fi
		chmod 700 "$PGDATA_DIR"
		if ! as_pg test -w "$PGDATA_DIR"; then
			die "OS user '$PG_OS_USER' cannot access $PGDATA_DIR (is a parent directory, e.g. /root, not traversable?).
  Set ROOMLOG_PGDATA to a directory it can reach, e.g. ROOMLOG_PGDATA=/tmp/roomlog-pgdata"
		fi
		if ! as_pg "$initdb" -D "$PGDATA_DIR" -U "$DB_USER" --auth=trust -E UTF8 --no-locale >&2; then
			die "initdb failed for $PGDATA_DIR"
		fi
	elif [[ "$(id -u)" -eq 0 ]]; then
		# Make sure a data dir created by someone else is usable by the cluster user.
		if [[ "$(stat -c %U "$PGDATA_DIR")" != "$PG_OS_USER" ]]; then
			log "chown -R $PG_OS_USER $PGDATA_DIR"
			chown -R "$PG_OS_USER": "$PGDATA_DIR"
			chmod 700 "$PGDATA_DIR"
		fi
	fi

	write_private_conf

	if is_ready "$PRIVATE_HOST" "$PRIVATE_PORT"; then
		die "something else is already listening on $PRIVATE_HOST:$PRIVATE_PORT (not the cluster in $PGDATA_DIR); stop it or set ROOMLOG_PG_PORT"
	fi

	log "starting private cluster on $PRIVATE_HOST:$PRIVATE_PORT (log: $PGDATA_DIR/log)"
	# 9<&-: the postmaster must not inherit the lock fd, or it would hold the lock forever.
	if ! as_pg "$pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/log" -w -t 60 start >&2 9<&-; then
		log "pg_ctl start failed; last lines of $PGDATA_DIR/log:"
		as_pg tail -n 30 "$PGDATA_DIR/log" >&2 || true
		die "could not start private cluster"
	fi
	local _
	for _ in $(seq 1 50); do
		is_ready "$PRIVATE_HOST" "$PRIVATE_PORT" && return 0
		sleep 0.2
	done
	die "private cluster started but is not accepting connections on $PRIVATE_HOST:$PRIVATE_PORT"
}

stop_private() {
	if [[ ! -f "$PGDATA_DIR/PG_VERSION" ]]; then
		log "no private cluster in $PGDATA_DIR; nothing to stop"
		return 0
	fi
	if ! private_running; then
		log "private cluster in $PGDATA_DIR is not running"
		return 0
	fi
	ensure_os_user
	log "stopping private cluster in $PGDATA_DIR"
	as_pg "$(pgtool pg_ctl)" -D "$PGDATA_DIR" stop -m fast -w >&2
}

# ---------------------------------------------------------------------------------------------
# Resolve a server; sets SERVER_HOST/SERVER_PORT or RESOLVED_URL.
resolve_from_env() { # -> prints URL if env gives one (verified)
	local want_db="$1" url=""
	if [[ "$want_db" == postgres && -n "${TEST_DATABASE_URL:-}" ]]; then
		url="$TEST_DATABASE_URL"
		url_works "$url" || die "TEST_DATABASE_URL is set but does not answer (psql -d \"\$TEST_DATABASE_URL\" -c 'select 1' failed)"
		echo "$url"
		return 0
	fi
	[[ -n "${DATABASE_URL:-}" ]] || return 1
	if [[ "$want_db" == postgres ]]; then
		url="$(rewrite_url_db "$DATABASE_URL" postgres)" ||
			die "cannot derive an admin URL from DATABASE_URL (only postgres:// URLs are supported); set TEST_DATABASE_URL"
	else
		url="$DATABASE_URL"
	fi
	url_works "$url" || die "DATABASE_URL is set but ${url%%\?*} does not answer (psql -c 'select 1' failed); unset it to auto-detect"
	echo "$url"
}

main() {
	case "$MODE" in
	url | test-url)
		local want_db=$DB_NAME
		[[ "$MODE" == test-url ]] && want_db=postgres
		if [[ "${ROOMLOG_FORCE_PRIVATE_PG:-}" != 1 ]]; then
			if resolve_from_env "$want_db"; then
				return 0
			fi
			if is_ready "$SYSTEM_HOST" "$SYSTEM_PORT"; then
				ensure_database "$SYSTEM_HOST" "$SYSTEM_PORT" "$DB_NAME"
				url_for "$SYSTEM_HOST" "$SYSTEM_PORT" "$want_db"
				return 0
			fi
			log "no server on $SYSTEM_HOST:$SYSTEM_PORT; using private cluster in $PGDATA_DIR"
		fi
		if ! (private_running && is_ready "$PRIVATE_HOST" "$PRIVATE_PORT"); then
			start_private
		fi
		ensure_database "$PRIVATE_HOST" "$PRIVATE_PORT" "$DB_NAME"
		url_for "$PRIVATE_HOST" "$PRIVATE_PORT" "$want_db"
		;;
	stop)
		stop_private
		;;
	status)
		if [[ -n "${DATABASE_URL:-}" ]]; then log "DATABASE_URL is set: ${DATABASE_URL%%\?*}"; fi
		if is_ready "$SYSTEM_HOST" "$SYSTEM_PORT"; then log "system server: up on $SYSTEM_HOST:$SYSTEM_PORT"; else log "system server: down on $SYSTEM_HOST:$SYSTEM_PORT"; fi
		if private_running; then log "private cluster: running ($PGDATA_DIR, port $PRIVATE_PORT)"; else log "private cluster: not running ($PGDATA_DIR)"; fi
		;;
	-h | --help | help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
		;;
	*)
		die "unknown mode '$MODE' (expected: url, test-url, stop, status)"
		;;
	esac
}

main
