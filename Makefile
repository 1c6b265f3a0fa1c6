# roomlog developer and CI entry points. `make` (or `make help`) lists the targets.
#
# Database: every target that needs PostgreSQL gets it from scripts/dev-db.sh, which uses
# $DATABASE_URL if set, else a server on 127.0.0.1:5432, else starts a private cluster in
# .pgdata (127.0.0.1:54329). `make db-stop` stops that private cluster.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

GO          ?= go
PKGS        ?= ./...
# -race is the default for `make test`; override with GOTESTFLAGS= (empty) if it is too slow.
GOTESTFLAGS ?= -race
TEST_TIMEOUT ?= 9m
FAULTS_TIMEOUT ?= 30m
FUZZTIME    ?= 50000x
BENCH_ARGS  ?= all
# roomlog's patched copy of one Socket.IO module (go.mod replaces it; see its PATCHES.md):
# a module of its own, so ./... above does not reach it.
PATCHED_SIO := transport/third_party/socket.io-v3
SOAK_ARGS   ?=

# DEVELOPMENT-ONLY defaults for `make run`; exported only when the variable is unset.
DEV_JWT_SECRET   := dev-only-insecure-jwt-secret-change-me-0123456789
DEV_API_KEYS     := dev:dev-only-insecure-api-key-0001
DEV_FRONTEND_URL := http://localhost:3000
DEV_ADDR         := 127.0.0.1:8080

# Shell snippet: export TEST_DATABASE_URL (admin URL; tests create per-test databases from it).
# `x=$(cmd)` (not `export x=$(cmd)`) so a dev-db.sh failure aborts the recipe.
define test_db_env
test_db_url=$$(scripts/dev-db.sh test-url)
export TEST_DATABASE_URL="$$test_db_url"
echo "make: TEST_DATABASE_URL=$${TEST_DATABASE_URL%%\?*}" >&2
endef

.PHONY: help run token test test-faults bench soak fuzz lint build db-stop db-url npm-deps

help: ## List targets
	@echo "roomlog make targets:"
	awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	echo
	echo "Variables: GOTESTFLAGS=$(GOTESTFLAGS) FUZZTIME=$(FUZZTIME) PKGS=$(PKGS) BENCH_ARGS=$(BENCH_ARGS)"

run: ## Run roomlogd locally with DEVELOPMENT-ONLY credentials (starts/uses a dev database)
	@case "$${ROOMLOG_ENV:-development}" in
	  development|dev|test) ;;
	  *) if [[ -z "$${ROOMLOG_JWT_SECRET:-}" || -z "$${ROOMLOG_API_KEYS:-}" ]]; then
	       echo "make run: ROOMLOG_ENV=$$ROOMLOG_ENV but ROOMLOG_JWT_SECRET/ROOMLOG_API_KEYS are unset;" \
	            "refusing to inject development credentials outside development" >&2
	       exit 1
	     fi ;;
	esac
	db_url=$$(scripts/dev-db.sh)
	export DATABASE_URL="$$db_url"
	jwt_note="(from environment)"; keys_note="(from environment)"
	if [[ -z "$${ROOMLOG_JWT_SECRET:-}" ]]; then export ROOMLOG_JWT_SECRET='$(DEV_JWT_SECRET)'; jwt_note="$$ROOMLOG_JWT_SECRET"; fi
	if [[ -z "$${ROOMLOG_API_KEYS:-}" ]]; then export ROOMLOG_API_KEYS='$(DEV_API_KEYS)'; keys_note="$$ROOMLOG_API_KEYS"; fi
	export ROOMLOG_FRONTEND_URL="$${ROOMLOG_FRONTEND_URL:-$(DEV_FRONTEND_URL)}"
	export ROOMLOG_ENV="$${ROOMLOG_ENV:-development}"
	export ROOMLOG_ADDR="$${ROOMLOG_ADDR:-$(DEV_ADDR)}"
	redacted_db=$$(sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#' <<<"$$DATABASE_URL")
	{
	  echo "================================================================================"
	  echo "  roomlogd - LOCAL DEVELOPMENT RUN"
	  echo "  !! DEVELOPMENT-ONLY credentials below. Never use them in any shared,"
	  echo "  !! staging or production environment."
	  echo "    ROOMLOG_ENV          = $$ROOMLOG_ENV"
	  echo "    ROOMLOG_JWT_SECRET   = $$jwt_note"
	  echo "    ROOMLOG_API_KEYS     = $$keys_note"
	  echo "    ROOMLOG_FRONTEND_URL = $$ROOMLOG_FRONTEND_URL"
	  echo "    DATABASE_URL         = $$redacted_db"
	  echo "  Listening on: http://$$ROOMLOG_ADDR   (set ROOMLOG_ADDR to change)"
	  echo "  Mint a token signed with the same ROOMLOG_JWT_SECRET (another shell):"
	  echo "    make token TOKEN_USER=u1 TOKEN_ROLES=buyer"
	  echo "    # equivalent: ROOMLOG_JWT_SECRET=<secret above> go run ./cmd/roomlog token --user u1 --roles buyer"
	  echo "  Stop the private dev database (only if one was started): make db-stop"
	  echo "================================================================================"
	} >&2
	exec $(GO) run ./cmd/roomlogd

TOKEN_USER  ?= u1
TOKEN_ROLES ?= buyer
token: ## Mint a dev JWT (TOKEN_USER=u1 TOKEN_ROLES=buyer) with the same defaults as `make run`
	@export ROOMLOG_JWT_SECRET="$${ROOMLOG_JWT_SECRET:-$(DEV_JWT_SECRET)}"
	exec $(GO) run ./cmd/roomlog token --user '$(TOKEN_USER)' --roles '$(TOKEN_ROLES)'

npm-deps: ## Install Node test harness deps in test/js (npm ci) if needed
	@scripts/npm-deps.sh >/dev/null

test: ## go vet + go test with GOTESTFLAGS (default -race) against a dev PostgreSQL (Node harness installed first)
	@$(test_db_env)
	node_modules=$$(scripts/npm-deps.sh)
	export ROOMLOG_NODE_MODULES="$$node_modules"
	set -x
	$(GO) vet $(PKGS)
	$(GO) test $(GOTESTFLAGS) -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	(cd $(PATCHED_SIO) && $(GO) vet ./... && $(GO) test $(GOTESTFLAGS) -count=1 ./...)

test-faults: ## Fault-injection tests (-tags faults), 30m timeout
	@$(test_db_env)
	node_modules=$$(scripts/npm-deps.sh)
	export ROOMLOG_NODE_MODULES="$$node_modules"
	set -x
	$(GO) test -count=1 -tags faults -timeout $(FAULTS_TIMEOUT) $(PKGS)

soak: ## Soak (CI): a durable roomlogd, 500 sockets, 100 publishes/s for 60 s; fails on any loss, repeat or failed publish (SOAK_ARGS)
	@$(test_db_env)
	db_url=$$(scripts/dev-db.sh)
	export DATABASE_URL="$$db_url"
	set -x
	$(GO) run ./cmd/roomlog-bench soak $(SOAK_ARGS)

bench: ## Benchmarks: go run ./cmd/roomlog-bench BENCH_ARGS (default: all = append + Socket.IO scenarios vs Node peer; see docs/benchmarks.md)
	@$(test_db_env)
	db_url=$$(scripts/dev-db.sh)
	export DATABASE_URL="$$db_url"
	node_modules=$$(scripts/npm-deps.sh)
	export ROOMLOG_NODE_MODULES="$$node_modules"
	set -x
	$(GO) run ./cmd/roomlog-bench $(BENCH_ARGS)

fuzz: ## Run every Fuzz* target for FUZZTIME (default 50000x: iterations, not seconds) each
	@$(test_db_env)
	# `go test -list` prints each package's matching names, then "ok <pkg> <time>".
	targets=$$($(GO) test -list '^Fuzz' $(PKGS) | awk '/^Fuzz/ {n[++c] = $$1; next} /^ok/ {for (i = 1; i <= c; i++) print $$2 " " n[i]; c = 0}')
	if [[ -z "$$targets" ]]; then echo "make fuzz: no Fuzz targets found"; exit 0; fi
	count=0
	while read -r pkg name; do
	  count=$$((count + 1))
	  echo "=== fuzz $$pkg $$name ($(FUZZTIME))"
	  $(GO) test -run '^$$' -fuzz "^$${name}\$$" -fuzztime $(FUZZTIME) "$$pkg"
	done <<<"$$targets"
	echo "make fuzz: $$count target(s) passed"

lint: ## gofmt -l (fails on any unformatted file) + go vet (also with -tags faults)
	@files=$$(find . -type d \( -name .git -o -name .pgdata -o -name node_modules -o -name testdata -o -name vendor -o -name bin \) -prune -o -type f -name '*.go' -print)
	if [[ -n "$$files" ]]; then
	  unformatted=$$(gofmt -l $$files)
	  if [[ -n "$$unformatted" ]]; then
	    echo "gofmt: these files need formatting (run: gofmt -w <files>):" >&2
	    echo "$$unformatted" >&2
	    exit 1
	  fi
	fi
	set -x
	$(GO) vet $(PKGS)
	$(GO) vet -tags faults $(PKGS)
	(cd $(PATCHED_SIO) && $(GO) vet ./...)

build: ## Build all commands into bin/
	@mkdir -p bin
	set -x
	$(GO) build -o bin/ ./cmd/...

db-url: ## Print the dev DATABASE_URL (starting a private cluster if needed)
	@scripts/dev-db.sh

db-stop: ## Stop the private PostgreSQL cluster in .pgdata (never the system server)
	@scripts/dev-db.sh stop
