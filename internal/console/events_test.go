package console_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/testwait"
)

// acceptAs hands the engine a callback under a dedupe key (a retry when
// the key was seen) and waits until the event it names is evaluated.
func (r *rig) acceptAs(ev *event.Event, key string) string {
	r.t.Helper()
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now().UTC()
	}
	id, err := r.eng.Accept(context.Background(), ev, key)
	if err != nil {
		r.t.Fatal(err)
	}
	if !testwait.Within(10*time.Second, func() bool {
		d, err := r.eng.Event(id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			r.t.Fatal(err)
		}
		return err == nil && !pending(d.Jobs)
	}) {
		r.t.Fatalf("event %s was not evaluated", id)
	}
	return id
}

// status is a status callback of stream, which no test rule matches.
func status(stream string) *event.Event {
	return &event.Event{Source: event.SourceRecord, Kind: event.KindStatus, Event: "record_started",
		Domain: "play.example.com", App: "live", Stream: stream}
}

var eventRow = regexp.MustCompile(`<tr id="event-([0-9A-Z]+)"`)

// rows are the event ids a listing page shows, in order.
func rows(page string) []string {
	var out []string
	for _, m := range eventRow.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

// listingFixture is events of several streams with every outcome: room1
// (retried once), room2, room10, hall1 delivered; bad dead; a status
// callback of room1 that no rule matches.
type listingFixture struct {
	room1, room2, room10, hall1, bad, quiet string
}

func newListing(r *rig) listingFixture {
	var f listingFixture
	f.room1 = r.accept("room1", nil)
	f.room2 = r.accept("room2", nil)
	f.room10 = r.accept("room10", nil)
	f.hall1 = r.accept("hall1", nil)
	f.bad = r.accept("bad", nil)
	f.quiet = r.acceptAs(status("room1"), "")
	return f
}

func TestEventsFilters(t *testing.T) {
	r := newRig(t)
	f := newListing(r)
	// Aliyun retries room1's callback: counted on it, no row of its own.
	first, err := r.eng.Event(f.room1)
	if err != nil {
		t.Fatal(err)
	}
	retry := &event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com", App: "live",
		Stream: "room1", URI: "record/room1.m3u8"}
	if id := r.acceptAs(retry, first.DedupeKey); id != f.room1 {
		t.Fatalf("the retry was accepted as %s, want a duplicate of %s", id, f.room1)
	}
	at := func(id string) string { // the time in an id, as a filter's bound
		return time.UnixMilli(int64(ulid.MustParse(id).Time())).UTC().Format(time.RFC3339Nano)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{f.quiet, f.bad, f.hall1, f.room10, f.room2, f.room1}},
		{"stream=room1", []string{f.quiet, f.room10, f.room1}},
		{"stream=room", []string{f.quiet, f.room10, f.room2, f.room1}},
		{"stream=hall", []string{f.hall1}},
		{"stream=nowhere", nil},
		{"outcome=dead", []string{f.bad}},
		{"outcome=none", []string{f.quiet}},
		{"outcome=delivered", []string{f.hall1, f.room10, f.room2, f.room1}},
		{"outcome=pending", nil},
		{"outcome=duplicate", []string{f.room1}},
		{"kind=status", []string{f.quiet}},
		{"source=" + event.SourceRecord + "&kind=file", []string{f.bad, f.hall1, f.room10, f.room2, f.room1}},
		{"source=aliyun_vod", nil},
		{"rule=notify", []string{f.bad, f.hall1, f.room10, f.room2, f.room1}},
		{"from=" + url.QueryEscape(at(f.room10)), []string{f.quiet, f.bad, f.hall1, f.room10}},
		{"to=" + url.QueryEscape(at(f.room10)), []string{f.room2, f.room1}},
		{"from=" + url.QueryEscape(at(f.room2)) + "&to=" + url.QueryEscape(at(f.bad)), []string{f.hall1, f.room10, f.room2}},
		{"stream=room1&outcome=delivered&kind=file&rule=notify", []string{f.room10, f.room1}},
		{"stream=room&outcome=none&source=" + event.SourceRecord, []string{f.quiet}},
	} {
		page := r.get("/?"+tc.query, http.StatusOK)
		if got := rows(page); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("/?%s shows %v, want %v", tc.query, got, tc.want)
		}
		if len(tc.want) == 0 && !strings.Contains(page, "No events match these filters") {
			t.Errorf("/?%s: nothing shown, and not said:\n%s", tc.query, page)
		}
	}

	// Each row says what became of its deliveries; the retried one, how
	// often it was retried.
	page := r.get("/", http.StatusOK)
	for id, want := range map[string]string{
		f.room1: `<span class="state state-delivered outcome">delivered</span>`,
		f.bad:   `<span class="state state-dead outcome">dead</span>`,
		f.quiet: `<span class="state state-none outcome">no match</span>`,
	} {
		if row := rowOf(t, page, id); !strings.Contains(row, want) {
			t.Errorf("the row of %s lacks %q:\n%s", id, want, row)
		}
	}
	if row := rowOf(t, page, f.room1); !strings.Contains(row, `<span class="duplicates">duplicates: 1 retry</span>, the last <time`) {
		t.Errorf("the retried event's row does not say so:\n%s", row)
	}
	if row := rowOf(t, page, f.room2); strings.Contains(row, "duplicate") {
		t.Errorf("an event never retried shows duplicates:\n%s", row)
	}

	// The form shows the filters in force.
	page = r.get("/?stream=room1&outcome=dead&kind=file&from=2026-12-01T08:30:00Z", http.StatusOK)
	for _, want := range []string{`name="stream" value="room1"`, `<option value="dead" selected>dead</option>`, `name="kind" value="file"`,
		`name="from" type="datetime-local" step="1" value="2026-12-01T08:30:00"`, `<a href="/">Clear</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the filtered page lacks %q:\n%s", want, page)
		}
	}
	// As a datetime-local input sends it, the time is read as UTC.
	if got := rows(r.get("/?to="+url.QueryEscape(strings.TrimSuffix(at(f.room10), "Z")), http.StatusOK)); len(got) != 2 {
		t.Errorf("a time without a zone: %v", got)
	}
	for query, want := range map[string]string{
		"outcome=lost":                    `outcome &#34;lost&#34;: want delivered, pending, dead, none or duplicate`,
		"from=yesterday":                  "from: want a time such as",
		"from=2026-12-02&to=2026-12-01":   "time range: from (2026-12-02T00:00:00Z) must be before to",
		"limit=5000&stream=room":          "limit: want a number from 1 to 1000",
		"stream=room&to=2026-13-01T00:00": "to: want a time such as",
	} {
		if page := r.get("/?"+query, http.StatusBadRequest); !strings.Contains(page, want) {
			t.Errorf("/?%s: the refusal lacks %q:\n%s", query, want, page)
		}
	}
}

// rowOf is the table row of event id.
func rowOf(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `<tr id="event-`+id+`"`)
	if i < 0 {
		t.Fatalf("no row for %s:\n%s", id, page)
	}
	j := strings.Index(page[i:], "</tr>")
	return page[i : i+j]
}

func TestEventsPagingUnderFilters(t *testing.T) {
	r := newRig(t)
	var want []string // newest first: the room streams that delivered
	for i, s := range []string{"room-a", "hall-a", "room-b", "bad", "room-c", "room-d", "hall-b", "room-e", "room-f"} {
		id := r.accept(s, nil)
		if strings.HasPrefix(s, "room") {
			want = append([]string{id}, want...)
		}
		if i == 4 {
			r.acceptAs(status("room-x"), "") // no match: left out by the outcome filter
		}
	}
	seen, _ := r.pageThrough("/?stream=room&outcome=delivered&limit=2", eventRow, "stream", "outcome", "limit")
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("pages showed %v, want each delivered room event once, newest first: %v", seen, want)
	}
	// Events arriving meanwhile do not shift a page: the cursor is an id.
	second := r.get("/?stream=room&outcome=delivered&limit=2&before="+want[1], http.StatusOK)
	r.accept("room-new", nil)
	if again := r.get("/?stream=room&outcome=delivered&limit=2&before="+want[1], http.StatusOK); strings.Join(rows(again), ",") != strings.Join(rows(second), ",") {
		t.Errorf("a page moved when an event arrived: %v, then %v", rows(second), rows(again))
	}
}

func TestEventShowsOutcomeAndDuplicates(t *testing.T) {
	r := newRig(t)
	id := r.accept("bad", nil)
	d, err := r.eng.Event(id)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		retry := &event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com", App: "live",
			Stream: "bad", URI: "record/bad.m3u8"}
		r.acceptAs(retry, d.DedupeKey)
	}
	page := r.get("/events/"+id, http.StatusOK)
	for _, want := range []string{
		`<span class="state state-dead" id="outcome">dead</span>`,
		`<dd id="duplicates">2 retries of this callback answered as duplicates, the last at <time`,
		`class="state state-dead">dead<`, "permanent", "HTTP 400",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the event page lacks %q:\n%s", want, page)
		}
	}
	quiet := r.acceptAs(status("room1"), "")
	if page := r.get("/events/"+quiet, http.StatusOK); !strings.Contains(page, `id="outcome">no match<`) || strings.Contains(page, `id="duplicates"`) {
		t.Errorf("the page of an event without deliveries:\n%s", page)
	}
}
