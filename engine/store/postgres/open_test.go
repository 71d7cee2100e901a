package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"
)

// Replicas starting at once migrate one at a time: every one opens, and
// each version is applied once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
			if err == nil {
				t.Cleanup(func() { s.Close() })
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("Open: %v", err)
		}
	}
	rows := query(t, dsn, "SELECT version FROM livehook_schema ORDER BY version")
	if len(rows) != postgres.SchemaVersion() {
		t.Errorf("livehook_schema has versions %v, want each of 1..%d once", rows, postgres.SchemaVersion())
	}
	if v, err := postgres.Migrate(t.Context(), dsn); err != nil || v != postgres.SchemaVersion() {
		t.Errorf("Migrate on a migrated schema = %d, %v; want %d", v, err, postgres.SchemaVersion())
	}
}

// A schema newer than this build knows is refused, saying so: an old
// replica must not write a schema it does not understand.
func TestNewerSchemaRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	open(t, dsn, postgres.Options{}).Close()
	query(t, dsn, "INSERT INTO livehook_schema (version, name) VALUES (999, '0999_future.sql')")
	_, err := postgres.Open(t.Context(), dsn, postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this livehook knows") {
		t.Errorf("Open on a newer schema = %v, want it refused as newer", err)
	}
}

// No error of Open quotes the DSN's password, whatever failed.
func TestOpenErrorsKeepTheSecret(t *testing.T) {
	base := pgtest.Server(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Wr0ng-s3cret-Pa55"
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), secret)
	noServer := wrong
	noServer.Host = "127.0.0.1:1"
	for name, dsn := range map[string]string{"wrong password": wrong.String(), "no server": noServer.String()} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := postgres.Open(ctx, dsn, postgres.Options{})
		cancel()
		if err == nil {
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}

// A store whose connections are all cut (a failover, a restart of the
// server) fails the calls caught in it and recovers by itself: an accept
// that answered is stored, and the store goes on working, listening
// again included.
func TestSurvivesConnectionsCut(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn, postgres.Options{Poll: 50 * time.Millisecond})
	waitListening(t, s)
	accept(t, s, newEvent(base, "before"), "")
	// Every connection of this test's schema: the pool's and the listener's.
	query(t, pgtest.Server(t), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '"+pgtest.Schema(t, dsn)+"'")
	var stored []string
	failed := 0
	deadline := time.Now().Add(20 * time.Second)
	for len(stored) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d accepts worked in 20s after the cut (%d failed)", len(stored), failed)
		}
		ev := newEvent(base, "after")
		if _, err := s.Accept(t.Context(), &store.Incoming{Event: ev}); err != nil {
			failed++
			continue
		}
		stored = append(stored, ev.ID)
	}
	got := map[string]bool{}
	for len(got) < len(stored)+1 {
		batch := takeWithin(t, s, 10*time.Second)
		if len(batch) == 0 {
			break
		}
		for _, a := range batch {
			got[a.Event.ID] = true
		}
	}
	for _, id := range stored {
		if !got[id] {
			t.Errorf("event %s was accepted after the cut but is not stored", id)
		}
	}
	t.Logf("%d accepts failed after the cut", failed)
	waitListening(t, s)
}

// query runs sql on dsn and returns the first column of each row.
func query(t testing.TB, dsn, sql string) []any {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for rows.Next() {
		vs, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) > 0 {
			out = append(out, vs[0])
		}
	}
	if err := rows.Err(); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	return out
}
