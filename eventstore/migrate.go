package eventstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/roomlog/roomlog/migrations"
)

// MigrationStatus is the schema's applied version.
type MigrationStatus struct {
	// Version is the last applied migration (0: none).
	Version uint
	// Latest is the newest migration this binary carries.
	Latest uint
	// Dirty is true when a migration failed halfway and needs a human.
	Dirty bool
}

// Current reports whether the schema is exactly what this binary expects.
func (m MigrationStatus) Current() bool { return !m.Dirty && m.Version == m.Latest }

// MigrateUp applies every pending migration embedded in package migrations.
func MigrateUp(databaseURL string) error {
	return withMigrate(databaseURL, func(m *migrate.Migrate) error {
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
}

// MigrateDown reverts steps migrations (all of them when steps <= 0).
// Down migrations destroy the log; they exist for development.
func MigrateDown(databaseURL string, steps int) error {
	return withMigrate(databaseURL, func(m *migrate.Migrate) error {
		var err error
		if steps <= 0 {
			err = m.Down()
		} else {
			err = m.Steps(-steps)
		}
		if err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate down: %w", err)
		}
		return nil
	})
}

// MigrateStatus reports the applied and the latest migration versions.
func MigrateStatus(databaseURL string) (MigrationStatus, error) {
	var st MigrationStatus
	latest, err := LatestMigration()
	if err != nil {
		return st, err
	}
	st.Latest = latest
	err = withMigrate(databaseURL, func(m *migrate.Migrate) error {
		v, dirty, err := m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		st.Version, st.Dirty = v, dirty
		return nil
	})
	return st, err
}

// LatestMigration returns the newest migration version embedded in the
// binary.
func LatestMigration() (uint, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return 0, fmt.Errorf("open migrations: %w", err)
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("first migration: %w", err)
	}
	for {
		next, err := src.Next(v)
		if err != nil {
			return v, nil //nolint:nilerr // io.ErrNotExist marks the last one
		}
		v = next
	}
}

func withMigrate(databaseURL string, fn func(*migrate.Migrate) error) error {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("open migrations: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, migrateURL(databaseURL))
	if err != nil {
		return unavailable("connect for migrations", err)
	}
	defer m.Close()
	return fn(m)
}

// migrateURL points golang-migrate's pgx v5 driver at databaseURL.
func migrateURL(u string) string {
	for _, p := range []string{"postgresql://", "postgres://"} {
		if strings.HasPrefix(u, p) {
			return "pgx5://" + strings.TrimPrefix(u, p)
		}
	}
	return u
}
