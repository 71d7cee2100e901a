package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema's versions, in order: migrations/NNNN_name.sql is version
// NNNN. A migration, once released, is never edited: a change is a new
// file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []migration
	for i, name := range names {
		base := path.Base(name)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d first in its name", base, i+1)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(body)})
	}
	return out, nil
}

// lockSpace is the first key of every advisory lock livehook takes, so
// its locks do not meet another application's; the second is lockKey's.
const lockSpace int32 = 0x6c68 // "lh"

// lockKey names one of livehook's advisory locks in the schema: two
// deployments in one database, each in its own schema, do not share them.
func lockKey(schema, purpose string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema + "\x00" + purpose))
	return int32(h.Sum32())
}

// migrate brings the schema to the newest version this build knows,
// under an advisory lock, so that replicas starting at once migrate one
// after the other and the later ones find nothing to do. Each version is
// applied in its own transaction with its record in livehook_schema. It
// returns the version the schema is at.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	key := lockKey(schema, "migrate")
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockSpace, key); err != nil {
		return 0, fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// A lock left behind ends with the session; an unlock that fails
		// means the session is gone already.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockSpace, key)
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS livehook_schema (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	var at int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM livehook_schema").Scan(&at); err != nil {
		return 0, fmt.Errorf("migrate: read the schema version: %w", err)
	}
	if at > len(ms) {
		return at, fmt.Errorf("migrate: the schema is at version %d, newer than this livehook knows (%d): run a newer livehook", at, len(ms))
	}
	for _, m := range ms[at:] {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return at, fmt.Errorf("migrate to %s: %w", m.name, err)
		}
		_, err = tx.Exec(ctx, m.sql)
		if err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO livehook_schema (version, name) VALUES ($1, $2)", m.version, m.name)
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return at, fmt.Errorf("migrate to %s: %w", m.name, err)
		}
		at = m.version
	}
	return at, nil
}

// SchemaVersion is the newest schema version this build knows.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}
