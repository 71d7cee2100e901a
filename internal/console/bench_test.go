package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/internal/admin"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/testwait"
)

// BenchmarkEventsPage serves the events page, first and deep in the
// listing (by cursor), over a few thousand stored events, and reports
// each as a ratio of the JSON API's answer for the same page measured in
// the same run: what the HTML costs, and that paging deep costs no more.
func BenchmarkEventsPage(b *testing.B) {
	const stored = 5000
	r := newRig(b)
	ids := make([]string, 0, stored)
	for i := range stored {
		ev := &event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com", App: "live",
			Stream: fmt.Sprintf("room%d", i), URI: fmt.Sprintf("record/room%d.m3u8", i), ReceivedAt: time.Now().UTC()}
		id, err := r.eng.Accept(context.Background(), ev, fmt.Sprintf("bench-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	idle(b, r)
	api := httptest.NewServer(admin.New(admin.Options{Events: r.eng, Rules: func() any { return nil }}))
	defer api.Close()
	deep := ids[stored/10] // 90% of the way down the listing
	targets := []string{
		api.URL + "/api/events?limit=50",
		r.srv.URL + "/?limit=50",
		api.URL + "/api/events?limit=50&before=" + deep,
		r.srv.URL + "/?limit=50&before=" + deep,
	}
	took := make([]time.Duration, len(targets))
	for _, u := range targets { // warm up
		fetch(b, u)
	}
	b.ResetTimer()
	for range b.N {
		for i, u := range targets {
			start := time.Now()
			fetch(b, u)
			took[i] += time.Since(start)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(took[1].Microseconds())/n, "page_µs")
	b.ReportMetric(float64(took[1])/float64(took[0]), "page_to_api_ratio")
	b.ReportMetric(float64(took[3].Microseconds())/n, "deep_page_µs")
	b.ReportMetric(float64(took[3])/float64(took[2]), "deep_page_to_api_ratio")
	b.ReportMetric(float64(took[3])/float64(took[1]), "deep_to_first_page_ratio")
}

// idle waits until every accepted event is evaluated and delivered.
func idle(b *testing.B, r *rig) {
	b.Helper()
	var st store.Stats
	if !testwait.Within(2*time.Minute, func() bool {
		var err error
		if st, err = r.store.Stats(context.Background()); err != nil {
			b.Fatal(err)
		}
		return st.Unevaluated == 0 && st.Pending == 0
	}) {
		b.Fatalf("the engine did not settle: %+v", st)
	}
}

func fetch(b *testing.B, url string) {
	res, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil || res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", url, res.StatusCode, err)
	}
}
