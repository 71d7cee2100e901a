// Package pgtest gives a test a PostgreSQL schema of its own, in the
// database that LIVEHOOK_TEST_POSTGRES names (.ci/run starts a throwaway
// server and sets it). Without the variable the test is skipped, saying
// why, unless CI=true: CI must not pass by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env is the variable that names the test database.
const Env = "LIVEHOOK_TEST_POSTGRES"

// Server returns the DSN of the test database, or skips t (fails it
// under CI=true) when there is none.
func Server(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(Env + " is not set: CI must run the PostgreSQL tests (.ci/run starts a server)")
		}
		t.Skip(Env + " is not set: skipping the PostgreSQL tests (.ci/run starts a server; see .ci/postgres.sh)")
	}
	return dsn
}

// DSN creates a fresh schema in the test database, dropped when t ends,
// and returns a DSN whose search_path is that schema. Its connections
// carry the schema's name as their application_name, so a test can find
// them in pg_stat_activity.
func DSN(t testing.TB) string {
	t.Helper()
	base := Server(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])
	exec(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL", Env)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Exec runs one statement on the test database, outside any test's
// schema: for tests that act on the server itself.
func Exec(t testing.TB, sql string) {
	t.Helper()
	exec(t, Server(t), sql)
}

// Schema is the schema a DSN made by DSN names.
func Schema(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("search_path")
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
