package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/engine/store/postgres"
	"github.com/livehook/livehook/engine/store/postgres/pgtest"
)

// Events and jobs written at schema version 2 are listed with their
// stream, kind and outcome once migration 3 has filled them in.
func TestListingMigrationFillsOldRows(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%.80s…: %v", sql, err)
		}
	}
	exec(`CREATE TABLE livehook_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
	for v := 1; v <= 2; v++ {
		exec(postgres.MigrationSQL(v))
		exec(fmt.Sprintf(`INSERT INTO livehook_schema (version, name) VALUES (%d, 'v%d')`, v, v))
	}
	for i, ev := range []struct{ id, stream, kind, state string }{
		{"01JDZ00000000000000000000A", "room1", "file", "delivered"},
		{"01JDZ00000000000000000000B", "room12", "file", "dead"},
		{"01JDZ00000000000000000000C", "hall", "status", ""},
		{"01JDZ00000000000000000000D", `nul\u0000in`, "file", "pending"},
	} {
		body := fmt.Sprintf(`{"id":%q,"source":"aliyun_live_record","kind":%q,"stream":"%s","received_at":"2026-11-27T08:00:0%dZ"}`, ev.id, ev.kind, ev.stream, i)
		exec(fmt.Sprintf(`INSERT INTO livehook_events (id, source, received_at, event, matched, outcome)
			VALUES ('%s', 'aliyun_live_record', '2026-11-27T08:00:0%dZ', convert_to('%s', 'UTF8'), '{}', '\x7b7d')`, ev.id, i, body))
		if ev.state != "" {
			exec(fmt.Sprintf(`INSERT INTO livehook_jobs (id, event_id, action, state, next_at, job)
				VALUES (convert_to('%s.r.0', 'UTF8'), '%s', '\x61', '%s', now(), '\x7b7d')`, ev.id, ev.id, ev.state))
		}
	}
	s := open(t, dsn, postgres.Options{})
	list := func(f store.EventFilter) []string {
		t.Helper()
		f.Limit = 10
		recs, err := s.Events(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Event.Stream+":"+r.Outcome)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.EventFilter
		want []string
	}{
		{store.EventFilter{}, []string{"nul\x00in:pending", "hall:none", "room12:dead", "room1:delivered"}},
		{store.EventFilter{Stream: "room1"}, []string{"room12:dead", "room1:delivered"}},
		{store.EventFilter{Kind: "status"}, []string{"hall:none"}},
		{store.EventFilter{Outcome: store.OutcomeDead}, []string{"room12:dead"}},
		{store.EventFilter{Outcome: store.OutcomePending}, []string{"nul\x00in:pending"}},
	} {
		if got := list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
