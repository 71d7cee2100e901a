package postgres_test

import (
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"
	"github.com/livehook/livehook/engine/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Store, func() store.Store) {
		dsn := pgtest.DSN(t)
		return open(t, dsn, postgres.Options{}), func() store.Store { return open(t, dsn, postgres.Options{}) }
	})
}

// base is the time test events are stamped around.
var base = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func open(t testing.TB, dsn string, o postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // Close is idempotent: tests may close earlier
	return s
}
