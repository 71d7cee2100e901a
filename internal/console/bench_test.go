package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/admin"
	"github.com/livehook/livehook/internal/console"
)

// storeEvents is the console's and the API's event reads straight from a
// store, for a benchmark that builds its store without an engine.
type storeEvents struct{ s store.Store }

func (e storeEvents) Events(f store.EventFilter) ([]*store.EventRecord, error) {
	return e.s.Events(context.Background(), f)
}
func (e storeEvents) Event(id string) (*store.EventDetail, error) {
	return e.s.Event(context.Background(), id)
}
func (e storeEvents) DeadLetters(f store.DeadFilter) ([]*store.Job, error) {
	return e.s.DeadLetters(context.Background(), f)
}
func (storeEvents) ReplayDeadLetter(string) (*store.Job, error) { return nil, store.ErrNotDead }
func (storeEvents) ReplayEvent(string) ([]*store.Job, error)    { return nil, store.ErrNotFound }

// benchStored is how many events BenchmarkEventsPage stores.
const benchStored = 1_000_000

// BenchmarkEventsPage serves the events page over 1,000,000 stored events
// (5,000 streams, ten days, 1 % dead, 2 % pending, 70 % delivered), as
// the first page, deep in the listing by cursor, filtered by a stream
// prefix (2 % of the events), by outcome, by both (0.02 %), and by an
// hour's time range. Each case is reported in ms per page, and as a ratio
// of the JSON API's unfiltered first page measured in the same
// iterations. The events are written through the store's own calls
// (Accept, Commit with jobs already settled), on tmpfs where there is one:
// an engine delivering a million jobs would take most of an hour here.
func BenchmarkEventsPage(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "livehook-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(shm) })
		dir = shm
	}
	start := time.Now().UTC().Add(-10 * 24 * time.Hour).Truncate(time.Hour)
	step := 10 * 24 * time.Hour / benchStored
	ids := buildEvents(b, dir, start, step)
	st, err := store.Open(dir, store.Options{}) // reopened: counts as they stand on disk
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h, err := console.New(console.Options{Events: storeEvents{st}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	api := httptest.NewServer(admin.New(admin.Options{Events: storeEvents{st}, Rules: func() any { return nil }}))
	defer api.Close()
	hour := start.Add(48 * time.Hour)
	cases := []struct{ name, url string }{
		{"api", api.URL + "/api/events?limit=50"},
		{"first", srv.URL + "/?limit=50"},
		{"deep", srv.URL + "/?limit=50&before=" + ids[benchStored/10]},
		{"stream", srv.URL + "/?limit=50&stream=room12"},
		{"stream_deep", srv.URL + "/?limit=50&stream=room12&before=" + ids[benchStored/2]},
		{"dead", srv.URL + "/?limit=50&outcome=dead"},
		{"pending_deep", srv.URL + "/?limit=50&outcome=pending&before=" + ids[benchStored/2]},
		{"stream_dead", srv.URL + "/?limit=50&stream=room12&outcome=dead"},
		{"hour", srv.URL + "/?limit=50&" + url.Values{"from": {hour.Format(time.RFC3339)}, "to": {hour.Add(time.Hour).Format(time.RFC3339)}}.Encode()},
	}
	took := make([]time.Duration, len(cases))
	rows := make([]int, len(cases))
	for i, c := range cases { // warm up, and see that each case finds a page
		rows[i] = fetch(b, c.url)
	}
	n := 0
	for b.Loop() {
		for i, c := range cases {
			t0 := time.Now()
			fetch(b, c.url)
			took[i] += time.Since(t0)
		}
		n++
	}
	worst := time.Duration(0)
	for i, c := range cases {
		per := took[i] / time.Duration(n)
		b.ReportMetric(float64(per)/float64(time.Millisecond), c.name+"_ms")
		if i > 0 {
			b.ReportMetric(float64(took[i])/float64(took[0]), c.name+"_to_api_ratio")
			worst = max(worst, per)
		}
		if rows[i] < 50 {
			b.Errorf("%s: %d rows, want a full page", c.name, rows[i])
		}
	}
	b.ReportMetric(float64(worst)/float64(time.Millisecond), "worst_page_ms")
}

// buildEvents stores benchStored events in dir, one every step from
// start, and returns their ids, oldest first.
func buildEvents(b *testing.B, dir string, start time.Time, step time.Duration) []string {
	b.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	ids := make([]string, 0, benchStored)
	const batch = 2000
	for lo := 0; lo < benchStored; lo += batch {
		for i := lo; i < lo+batch; i++ {
			at := start.Add(time.Duration(i) * step)
			ev := &event.Event{ID: ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String(),
				Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com", App: "live",
				Stream: fmt.Sprintf("room%d", i%5000), ReceivedAt: at}
			ev.URI = "record/" + ev.Stream + "/" + ev.ID + ".m3u8"
			if i%10 == 9 {
				ev.Source, ev.Kind = "generic", event.KindEvent
			}
			if _, err := st.Accept(ctx, &store.Incoming{Event: ev}); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, ev.ID)
		}
		taken, err := st.Unevaluated(ctx, batch)
		if err != nil || len(taken) != batch {
			b.Fatalf("took %d of %d: %v", len(taken), batch, err)
		}
		evals := make([]*store.Evaluation, 0, batch)
		for k, a := range taken {
			i := lo + k
			e := &store.Evaluation{EventID: a.Event.ID, Matched: []string{}}
			state := ""
			switch {
			case i%100 == 7:
				state = store.Dead
			case i%50 == 3:
				state = store.Pending
			case i%10 < 7:
				state = store.Delivered
			}
			if state != "" {
				e.Matched = []string{"notify"}
				e.Jobs = []*store.Job{{ID: store.JobID(a.Event.ID, "notify", 0, 0), EventID: a.Event.ID, Rule: "notify",
					Action: "hook", Type: "probe", State: state, Created: a.Event.ReceivedAt, NextAt: a.Event.ReceivedAt,
					Attempts: []store.Attempt{{At: a.Event.ReceivedAt, Outcome: state}}}}
			}
			evals = append(evals, e)
		}
		if err := st.Commit(ctx, evals); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// fetch gets a page and says how many events it lists.
func fetch(b *testing.B, u string) int {
	res, err := http.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", u, res.StatusCode, err)
	}
	return max(bytes.Count(body, []byte(`<tr id="event-`)), bytes.Count(body, []byte(`"matched"`))) // one each a row
}
