// Package migrations embeds roomlog's SQL schema migrations so that the
// server, the CLI and the tests apply exactly the same files.
//
// Files are named NNNN_name.up.sql / NNNN_name.down.sql, as golang-migrate's
// iofs source expects. Every migration is commented: the schema is part of
// the durability argument, so the reasons for each constraint live next to it.
package migrations

import "embed"

// FS holds every *.sql migration file.
//
//go:embed *.sql
var FS embed.FS
