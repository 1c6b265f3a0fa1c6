// Command roomlog is roomlog's command-line tool: it migrates the schema,
// publishes, tails, queries and verifies the event log, and mints
// development tokens. It talks to PostgreSQL directly (DATABASE_URL), so it
// works for operators even when no server runs.
//
// Usage:
//
//	roomlog migrate up|down|status [-steps N]
//	roomlog publish -event E -room R [-room R2] -payload JSON [-id KEY] [-producer NAME]
//	roomlog publish < events.ndjson      # one {event, rooms|room, payload, id?} per line
//	roomlog tail [-room R] [-after SEQ] [-from-beginning] [-follow] [-max N]
//	roomlog query [-room R] [-event T] [-producer P] [-event-id ID] [-since T] [-until T] [-contains JSON] [-format ndjson|csv] [-limit N]
//	roomlog query -entity KIND:ID [-at T] [-state]
//	roomlog verify [-room R | -all]
//	roomlog token -user ID [-roles buyer,seller] [-ttl 1h]
//	roomlog project status [-json] | roomlog project rebuild NAME
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// env is the process environment a command runs in, injected for tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

const usage = `usage: roomlog <command> [flags]

commands:
  migrate up|down|status   apply, revert or show schema migrations
  publish                  append events (flags, or NDJSON on stdin)
  tail                     print a room's or the whole log's events, optionally following
  query                    audit query (filters), NDJSON or CSV out
  verify                   check a room's (or every room's) hash chain
  token                    mint a development JWT (HS256, ROOMLOG_JWT_SECRET)
  project status|rebuild   read-model projections: lag per projection, or rebuild one from zero

DATABASE_URL selects the database (default: the local development server).
Run 'roomlog <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return 2
	}
	cmds := map[string]func(context.Context, []string, env) error{
		"migrate": cmdMigrate,
		"publish": cmdPublish,
		"tail":    cmdTail,
		"query":   cmdQuery,
		"verify":  cmdVerify,
		"token":   cmdToken,
		"project": cmdProject,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprint(e.stdout, usage)
			return 0
		}
		fmt.Fprintf(e.stderr, "roomlog: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err := cmd(ctx, args[1:], e); err != nil {
		if err == errUsage {
			return 2
		}
		if ec, ok := err.(exitCode); ok {
			return int(ec)
		}
		fmt.Fprintf(e.stderr, "roomlog %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// exitCode is returned by a command that already reported its outcome and
// only needs a non-zero status (verify finding tampering).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }
