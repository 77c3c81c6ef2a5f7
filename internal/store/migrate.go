package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations are the embedded schema steps; migrations[i] brings
// user_version from i to i+1.
var migrations = loadMigrations(migrationFS)

// loadMigrations reads migrations/NNNN_name.sql in order and panics (a
// build mistake, caught by every test) if the numbers are not 1..n.
func loadMigrations(fsys fs.FS) []string {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	out := make([]string, len(names))
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || n > len(names) || out[n-1] != "" {
			panic("store: bad migration file name " + name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		out[n-1] = string(b)
	}
	return out
}

// migrate checks the application id and applies the pending steps, all in
// one immediate transaction, so a failure leaves the file as it was.
// schema is what a kind of samizdat database is: its SQLite application
// id (so that one kind never passes for another and gets its migrations)
// and its numbered migrations.
type schema struct {
	name  string
	appID int
	steps []string
}

// profileSchema is the profile database's.
var profileSchema = schema{name: "profile", appID: applicationID, steps: migrations}

func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	return migrateSchema(ctx, db, schema{name: profileSchema.name, appID: profileSchema.appID, steps: steps})
}

func migrateSchema(ctx context.Context, db *sql.DB, sc schema) error {
	steps := sc.steps
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return openError(err)
	}
	defer tx.Rollback()

	var appID, version, objects int
	if err := tx.QueryRowContext(ctx, `PRAGMA application_id`).Scan(&appID); err != nil {
		return openError(err)
	}
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return openError(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&objects); err != nil {
		return openError(err)
	}
	switch {
	case appID == 0 && version == 0 && objects == 0: // a new database
	case appID != sc.appID:
		return fmt.Errorf("%w: application id %#x is not a %s database's", ErrNotDatabase, appID, sc.name)
	case version > len(steps):
		return fmt.Errorf("%w: schema version %d, this build knows %d", ErrSchemaTooNew, version, len(steps))
	case version == len(steps):
		return nil // up to date: nothing to write
	}

	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA application_id = %d`, sc.appID)); err != nil {
		return fmt.Errorf("store: set application id: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	return nil
}
