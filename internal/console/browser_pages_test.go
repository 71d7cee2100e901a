package console_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/testwait"
)

func TestBrowserPlayground(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	id := r.accept("room1", map[string]any{"code": 3})

	do(t, ctx, "try a condition on a stored event", chromedp.Navigate(r.srv.URL+"/playground"),
		chromedp.WaitVisible(chromedp.ID("when")),
		chromedp.SendKeys(chromedp.ID("when"), `stream == "room1" && payload.code > 2`),
		chromedp.SendKeys(chromedp.ID("id"), id),
		chromedp.SetValue(chromedp.ID("rule"), "notify"),
		chromedp.Click(chromedp.ID("try")),
		chromedp.WaitVisible(chromedp.CSS("#condition .match")))
	if s := run(t, ctx, "the match", chromedp.Text(chromedp.CSS("#condition .match"))); s != "true" {
		t.Errorf("the condition shows match %q, want true", s)
	}
	reads := run(t, ctx, "the fields read", chromedp.Text(chromedp.CSS("#condition .reads tbody")))
	for _, want := range []string{"stream\t\"room1\"", "payload.code\t3"} {
		if !strings.Contains(reads, want) {
			t.Errorf("the fields read show %q, want %q in them", reads, want)
		}
	}
	if s := run(t, ctx, "the plan", chromedp.Text(chromedp.CSS("#trial .target"))); !strings.Contains(s, "probe") {
		t.Errorf("the rule's step shows target %q", s)
	}
	screenshot(t, ctx, "playground")

	// The event is in the box now: edit the condition into an error.
	do(t, ctx, "a condition that does not compile", chromedp.SetValue(chromedp.ID("when"), "stream ==\n"),
		chromedp.Click(chromedp.ID("try")), chromedp.WaitVisible(chromedp.ID("compile-error")))
	if s := run(t, ctx, "the error", chromedp.Text(chromedp.ID("compile-error"))); !strings.Contains(s, "line 1, column") {
		t.Errorf("the compile error reads %q", s)
	}
	if n := r.probe.runs.Load(); n != 1 {
		t.Errorf("the action ran %d times, want once: the event's own delivery", n)
	}
}

func TestBrowserBulkReplayAfterPreview(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	bad, gone := r.deadFixture()

	do(t, ctx, "the dead letters", chromedp.Navigate(r.srv.URL+"/deadletters"), chromedp.WaitVisible(chromedp.ID("groups")))
	screenshot(t, ctx, "deadletters")
	// One replayed from its row once the service is fixed.
	r.probe.fixed.Store(true)
	one := bad[0] + ".notify.0"
	do(t, ctx, "replay one", chromedp.Click(chromedp.CSS(fmt.Sprintf("[id=%q] button.replay", "dead-"+one))),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	do(t, ctx, "see it delivered", chromedp.Navigate(r.srv.URL+"/events/"+bad[0]),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("[id=%q] .state-delivered", "job-"+one))))

	// pager's group: show it, preview its replay, run it.
	do(t, ctx, "show pager's group", chromedp.Navigate(r.srv.URL+"/deadletters"),
		chromedp.Click(chromedp.Search(`//table[@id="groups"]//tr[td[1]="pager"]//a`)),
		chromedp.WaitVisible(chromedp.ID("bulk-replay")),
		chromedp.Click(chromedp.ID("bulk-replay")),
		chromedp.WaitVisible(chromedp.ID("preview-count")))
	if s := run(t, ctx, "the preview", chromedp.Text(chromedp.ID("preview-count"))); !strings.HasPrefix(s, "2 dead letters will be replayed") {
		t.Errorf("the preview says %q", s)
	}
	screenshot(t, ctx, "deadpreview")
	// The page it lands on says what ran (the preview's own notice has no
	// role).
	do(t, ctx, "run it", chromedp.Click(chromedp.ID("run")), chromedp.WaitVisible(chromedp.CSS(`p[role="status"]`)))
	if s := run(t, ctx, "notice", chromedp.Text(chromedp.CSS(`p[role="status"]`))); !strings.Contains(s, "Replayed 2 of the 2") {
		t.Errorf("after the bulk replay the page says %q", s)
	}
	for _, id := range gone {
		for _, j := range r.settled(id).Jobs {
			if want := map[string]string{"page-gone": store.Delivered, "notify": store.Dead}[j.Rule]; j.State != want {
				t.Errorf("%s is %s, want %s", j.ID, j.State, want)
			}
		}
	}
	for _, id := range bad[1:] {
		if j := r.settled(id).Jobs[0]; j.State != store.Dead {
			t.Errorf("%s was replayed with pager's", j.ID)
		}
	}
}

func TestBrowserRulesAndStatus(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	r.accept("room1", nil)
	hold := r.acceptOnly("hold")
	testwait.Until(t, 10*time.Second, "both events are counted and the held delivery has tried once", func() bool {
		j, err := r.store.Job(t.Context(), hold+".retry-later.0")
		if err != nil || len(j.Attempts) != 1 {
			return false
		}
		// Its notify delivery (one attempt, then dead) must be over, or it
		// could be the oldest pending.
		if n, err := r.store.Job(t.Context(), hold+".notify.0"); err != nil || n.State == store.Pending {
			return false
		}
		for _, rr := range r.eng.Report().Rules {
			if rr.Name == "notify" {
				return rr.Matches.LastHour == 2
			}
		}
		return false
	})
	do(t, ctx, "the rules", chromedp.Navigate(r.srv.URL+"/rules"), chromedp.WaitVisible(byID("rule-notify")))
	if s := run(t, ctx, "notify's matches", chromedp.Text(chromedp.CSS("#rule-notify .matches"))); s != "2 in the last hour, 2 since load" {
		t.Errorf("notify's matches read %q", s)
	}
	screenshot(t, ctx, "rules")
	do(t, ctx, "the status", chromedp.Navigate(r.srv.URL+"/status"), chromedp.WaitVisible(chromedp.ID("oldest")))
	if s := run(t, ctx, "the oldest pending", chromedp.Text(chromedp.ID("oldest"))); !strings.Contains(s, " old: "+hold+".retry-later.0, created ") {
		t.Errorf("the oldest pending delivery reads %q", s)
	}
	screenshot(t, ctx, "status")
}
