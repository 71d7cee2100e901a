package store_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
)

func TestParseEventQuery(t *testing.T) {
	at := time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		query   string
		want    store.EventFilter
		wantErr string
	}{
		{"", store.EventFilter{Limit: 50}, ""},
		{"limit=7&source=s&kind=k&stream=room&rule=r&outcome=dead&before=01X",
			store.EventFilter{Limit: 7, Source: "s", Kind: "k", Stream: "room", Rule: "r", Outcome: "dead", Before: "01X"}, ""},
		{"from=2026-12-01T08:30:00Z", store.EventFilter{Limit: 50, From: at}, ""},
		{"from=2026-12-01T16:30:00%2B08:00", store.EventFilter{Limit: 50, From: at}, ""},
		{"to=2026-12-01T08:30", store.EventFilter{Limit: 50, To: at}, ""},
		{"to=2026-12-01T08:30:00", store.EventFilter{Limit: 50, To: at}, ""},
		{"from=2026-12-01", store.EventFilter{Limit: 50, From: at.Truncate(24 * time.Hour)}, ""},
		{"outcome=duplicate", store.EventFilter{Limit: 50, Outcome: "duplicate"}, ""},
		{"outcome=none", store.EventFilter{Limit: 50, Outcome: "none"}, ""},
		{"limit=0", store.EventFilter{}, "limit: want a number from 1 to 1000"},
		{"limit=1001", store.EventFilter{}, "limit: want a number from 1 to 1000"},
		{"limit=x", store.EventFilter{}, "limit: want a number from 1 to 1000"},
		{"outcome=lost", store.EventFilter{}, `outcome "lost": want delivered, pending, dead, none or duplicate`},
		{"to=soon", store.EventFilter{}, `to: want a time such as 2026-12-01T08:30:00Z or 2026-12-01T08:30 (UTC), not "soon"`},
		{"from=2026-12-01T09:00Z&to=2026-12-01T08:00Z", store.EventFilter{},
			"from: want a time such as 2026-12-01T08:30:00Z or 2026-12-01T08:30 (UTC), not \"2026-12-01T09:00Z\""},
		{"from=2026-12-01T09:00:00Z&to=2026-12-01T08:00:00Z", store.EventFilter{},
			"time range: from (2026-12-01T09:00:00Z) must be before to (2026-12-01T08:00:00Z)"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.ParseEventQuery(q, 50)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q: error %v, want %q", tc.query, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
		// What Query keeps reads back as the same filter.
		back, err := store.ParseEventQuery(got.Query(), got.Limit)
		got.Before = ""
		if err != nil || back != got {
			t.Errorf("%q: Query() %s reads back as %+v, %v", tc.query, got.Query().Encode(), back, err)
		}
	}
}

func FuzzParseEventQuery(f *testing.F) {
	for _, s := range []string{"", "stream=room&outcome=dead", "from=2026-12-01T08:30&to=2026-12-02", "limit=9999", "from=%00", "outcome=%FF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		got, err := store.ParseEventQuery(q, 50)
		if err != nil {
			return
		}
		if got.Limit < 1 || got.Limit > store.MaxEventLimit {
			t.Fatalf("%q: limit %d accepted", raw, got.Limit)
		}
		back, err := store.ParseEventQuery(got.Query(), got.Limit)
		got.Before = ""
		if err != nil || back != got {
			t.Fatalf("%q: %+v reads back as %+v, %v", raw, got, back, err)
		}
	})
}
