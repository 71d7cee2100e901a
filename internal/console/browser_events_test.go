package console_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/livehook/livehook/engine/event"
)

// TestBrowserEventsFilterAndDuplicates filters the events page by a
// stream prefix as a person would, through the form, sees only that
// stream's rows with their outcomes, opens one and sees its attempts, and
// sees Aliyun's retry of it counted on it rather than as a row.
func TestBrowserEventsFilterAndDuplicates(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	room1 := r.accept("room1", nil)
	room2 := r.accept("room2", nil)
	hall := r.accept("hall1", nil)
	bad := r.accept("bad", nil)
	quiet := r.acceptAs(status("room3"), "")
	first := r.settled(room1)
	retry := &event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com", App: "live",
		Stream: "room1", URI: "record/room1.m3u8"}
	if id := r.acceptAs(retry, first.DedupeKey); id != room1 {
		t.Fatalf("the retry was accepted as %s, want a duplicate of %s", id, room1)
	}

	do(t, ctx, "open the events page", chromedp.EmulateViewport(1360, 760), chromedp.Navigate(r.srv.URL+"/"), chromedp.WaitVisible(byID("event-"+bad)))
	do(t, ctx, "filter by stream prefix", chromedp.SendKeys(chromedp.CSS(`input[name="stream"]`), "room"),
		chromedp.Submit(chromedp.CSS(`input[name="stream"]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="stream"][value="room"]`)))
	if u := run(t, ctx, "location", chromedp.Location()); !strings.Contains(u, "stream=room") {
		t.Errorf("the filter is not in the URL: %s", u)
	}
	type row struct{ ID, Stream, Outcome, Notes string }
	shown := run(t, ctx, "rows", chromedp.Evaluate[[]row](`[...document.querySelectorAll("#events tbody tr")].map(tr => ({
		ID: tr.id.replace("event-", ""), Stream: tr.cells[4].innerText, Outcome: tr.querySelector(".outcome").innerText, Notes: tr.cells[6].innerText}))`))
	want := []row{
		{ID: quiet, Stream: "play.example.com/live/room3", Outcome: "no match"},
		{ID: room2, Stream: "play.example.com/live/room2", Outcome: "delivered"},
		{ID: room1, Stream: "play.example.com/live/room1", Outcome: "delivered"},
	}
	if len(shown) != len(want) {
		t.Fatalf("filtered by stream room the page shows %+v, want %+v", shown, want)
	}
	for i, w := range want {
		if s := shown[i]; s.ID != w.ID || s.Stream != w.Stream || s.Outcome != w.Outcome {
			t.Errorf("row %d: %+v, want %+v", i, s, w)
		}
	}
	if notes := shown[2].Notes; !strings.Contains(notes, "duplicates: 1 retry, the last") {
		t.Errorf("the retried callback's row says %q", notes)
	}
	for _, id := range []string{hall, bad} {
		if strings.Contains(fmt.Sprint(shown), id) {
			t.Errorf("another stream's event %s is shown", id)
		}
	}
	screenshot(t, ctx, "events-filtered")

	do(t, ctx, "open the retried event", chromedp.Click(chromedp.CSS(fmt.Sprintf("[id=%q] a", "event-"+room1))),
		chromedp.WaitVisible(byID("job-"+room1+".notify.0")))
	if s := run(t, ctx, "duplicates", chromedp.Text(chromedp.ID("duplicates"))); !strings.HasPrefix(s, "1 retry of this callback answered as duplicates, the last at ") {
		t.Errorf("the event page says %q of its duplicates", s)
	}
	if s := run(t, ctx, "outcome", chromedp.Text(chromedp.ID("outcome"))); s != "delivered" {
		t.Errorf("the event page's outcome is %q", s)
	}
	attempts := run(t, ctx, "attempts", chromedp.Evaluate[[]string](fmt.Sprintf(
		`[...document.querySelectorAll('[id=%q] tbody tr')].map(tr => tr.innerText)`, "job-"+room1+".notify.0")))
	if len(attempts) != 1 || !strings.Contains(attempts[0], "delivered") || !strings.Contains(attempts[0], "HTTP 200: ok") {
		t.Errorf("the delivery's attempts read %q, want one, delivered", attempts)
	}
	screenshot(t, ctx, "event-duplicate")
}
