package console_test

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/testwait"
	_ "github.com/livehook/livehook/sources/all"
)

func play(q url.Values) string { return "/playground?" + q.Encode() }

func TestPlaygroundCondition(t *testing.T) {
	r := newRig(t)
	id := r.accept("room1", map[string]any{"code": 3, "note": "<i>x</i>"})

	// A stored event by id: the match and each field read, with its value.
	page := r.get(play(url.Values{"when": {`stream == "room1" && payload.code > 2 && payload.note != ""`}, "id": {id}}), http.StatusOK)
	for _, want := range []string{
		`<strong class="match">true</strong>`,
		"<td><code>stream</code></td><td><code>&#34;room1&#34;</code></td>",
		"<td><code>payload.code</code></td><td><code>3</code></td>",
		"<td><code>payload.note</code></td><td><code>&#34;\\u003ci\\u003ex\\u003c/i\\u003e&#34;</code></td>",
		`&#34;id&#34;: &#34;` + id + `&#34;`, // the event, shown for editing
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the playground lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<i>x</i>") {
		t.Errorf("the payload is not escaped:\n%s", page)
	}
	// Pasted JSON, edited: no longer a match.
	pasted := `{"source": "aliyun_live_record", "kind": "file", "stream": "room2", "payload": {"code": 1}}`
	page = r.get(play(url.Values{"when": {`stream == "room1" || payload.code > 2`}, "event": {pasted}}), http.StatusOK)
	if !strings.Contains(page, `<strong class="match">false</strong>`) || !strings.Contains(page, "<td><code>payload.code</code></td><td><code>1</code></td>") {
		t.Errorf("a pasted event that does not match:\n%s", page)
	}
	// A condition that does not compile: where, and why.
	page = r.get(play(url.Values{"when": {"kind == \"file\" &&\n  nosuch > 1"}, "event": {pasted}}), http.StatusOK)
	if !strings.Contains(page, "Does not compile: line 2, column 3: unknown name nosuch") || !strings.Contains(page, "<pre class=\"caret\">  nosuch &gt; 1\n  ^</pre>") {
		t.Errorf("a compile error:\n%s", page)
	}
	// One that fails on the event.
	if page := r.get(play(url.Values{"when": {`[1][payload.code] == 1`}, "event": {pasted}}), http.StatusOK); !strings.Contains(page, "Fails on this event: ") {
		t.Errorf("a run-time error:\n%s", page)
	}
	// A bad event says where it went wrong.
	for ev, want := range map[string]string{
		"{\n  \"stream\": \"a\",\n  oops}": "line 3, column 3",
		`{"strem": "a"}`:                   `unknown field &#34;strem&#34;`,
		`{"stream": 5}`:                    "cannot unmarshal number",
	} {
		if page := r.get(play(url.Values{"when": {"true"}, "event": {ev}}), http.StatusOK); !strings.Contains(page, `id="problem"`) || !strings.Contains(page, want) {
			t.Errorf("event %q: the page lacks %q:\n%s", ev, want, page)
		}
	}
	if page := r.get(play(url.Values{"when": {"true"}, "id": {"01JDZ0000000000000000000000"}}), http.StatusOK); !strings.Contains(page, "not found") {
		t.Errorf("an unknown event id:\n%s", page)
	}
	if page := r.get(play(url.Values{"when": {"true"}}), http.StatusOK); !strings.Contains(page, "give a sample event") {
		t.Errorf("no event:\n%s", page)
	}
	if page := r.get("/playground", http.StatusOK); strings.Contains(page, `class="problem"`) {
		t.Errorf("the empty playground shows a problem:\n%s", page)
	}
	r.get(play(url.Values{"when": {strings.Repeat("x", 17<<10)}}), http.StatusRequestEntityTooLarge)
	// Nothing the playground did was recorded.
	if recs, err := r.eng.Events(store.EventFilter{Limit: 100}); err != nil || len(recs) != 1 {
		t.Errorf("after the playground the store holds %d events (%v), want the one accepted", len(recs), err)
	}
}

// TestPlaygroundTakesARawCallback: a callback pasted as Aliyun sends it,
// with its source chosen, is decoded as intake decodes it.
func TestPlaygroundTakesARawCallback(t *testing.T) {
	r := newRig(t)
	raw, err := os.ReadFile("../../testdata/events/file_short_m3u8.json")
	if err != nil {
		t.Fatal(err)
	}
	page := r.get(play(url.Values{"when": {`kind == "file" && duration < 10`}, "event": {string(raw)}, "as": {"aliyun_live_record"}}), http.StatusOK)
	for _, want := range []string{
		`<strong class="match">true</strong>`,
		"<td><code>kind</code></td><td><code>&#34;file&#34;</code></td>",
		`<option value="aliyun_live_record" selected>a callback from aliyun_live_record</option>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the playground lacks %q:\n%s", want, page)
		}
	}
	// As rules see it, the same text is no event: its fields are the
	// callback's.
	if page := r.get(play(url.Values{"when": {"true"}, "event": {`{"domain": "d", "app": "a", "stream": "s", "uri": "u", "duration": "long"}`}, "as": {"aliyun_live_record"}}), http.StatusOK); !strings.Contains(page, `id="problem"`) || !strings.Contains(page, "as a callback from aliyun_live_record") {
		t.Errorf("an undecodable callback:\n%s", page)
	}
	if page := r.get(play(url.Values{"when": {"true"}, "event": {`{}`}, "as": {"no such!"}}), http.StatusOK); !strings.Contains(page, "is not a source name") {
		t.Errorf("an unknown source:\n%s", page)
	}
	if recs, err := r.eng.Events(store.EventFilter{Limit: 100}); err != nil || len(recs) != 0 {
		t.Errorf("after the playground the store holds %d events (%v), want none", len(recs), err)
	}
}

func TestPlaygroundRulePlansWithoutSending(t *testing.T) {
	r := newRig(t)
	id := r.accept("bad", nil) // a dead letter: what would its rule send now?
	runs := r.probe.runs.Load()

	page := r.get(play(url.Values{"id": {id}, "rule": {"notify"}}), http.StatusOK)
	for _, want := range []string{
		"<h2>Rule notify</h2>",
		`<strong class="match">true</strong>`,
		"<td><code>kind</code></td><td><code>&#34;file&#34;</code></td>",
		"It matches: a delivery of each step would send this.",
		"<h3>hook <small>(probe)</small></h3>",
		`<code class="target"> probe</code>`,
		`<option selected>notify</option>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the rule's trial lacks %q:\n%s", want, page)
		}
	}
	page = r.get(play(url.Values{"event": {`{"kind": "status", "stream": "x"}`}, "rule": {"notify"}}), http.StatusOK)
	if !strings.Contains(page, "It does not match: nothing would be sent.") {
		t.Errorf("a rule that does not match:\n%s", page)
	}
	if page := r.get(play(url.Values{"id": {id}, "rule": {"quiet"}}), http.StatusOK); !strings.Contains(page, "in shadow mode: its matches are recorded, and its steps never run") {
		t.Errorf("a rule in shadow mode:\n%s", page)
	}
	if page := r.get(play(url.Values{"id": {id}, "rule": {"bursts"}}), http.StatusOK); !strings.Contains(page, "is a rule over time") {
		t.Errorf("a rule over time:\n%s", page)
	}
	if page := r.get(play(url.Values{"id": {id}, "rule": {"nosuch"}}), http.StatusOK); !strings.Contains(page, "no such rule") {
		t.Errorf("an unknown rule:\n%s", page)
	}
	if n := r.probe.runs.Load(); n != runs {
		t.Errorf("the playground ran the action %d times", n-runs)
	}
}

func TestRulesPageCountsMatches(t *testing.T) {
	r := newRig(t)
	r.accept("room1", nil)
	r.accept("room2", nil)
	r.accept("gone", nil)
	counts := func(want ...string) {
		t.Helper()
		var page string
		testwait.Until(t, 10*time.Second, "the rules page counts the matches", func() bool {
			page = r.get("/rules", http.StatusOK)
			for _, w := range want {
				if !strings.Contains(page, w) {
					return false
				}
			}
			return true
		})
	}
	counts(`3 in the last hour, 3 since load`, `1 in the last hour, 1 since load`)
	if !strings.Contains(r.get("/rules", http.StatusOK), "Matches counted since") {
		t.Error("the rules page does not say since when")
	}
	// Changed rules start counting since load again; the hour stays.
	rules, err := os.ReadFile(r.rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.rules, append(rules, []byte("  - name: extra\n    when: stream == \"none\"\n    do: [ { action: hook } ]\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.eng.Reload(); err != nil {
		t.Fatal(err)
	}
	r.accept("room3", nil)
	counts(`4 in the last hour, 1 since load`, `1 in the last hour, 0 since load`)
}

func TestStatusShowsTheOldestPendingDelivery(t *testing.T) {
	r := newRig(t)
	if page := r.get("/status", http.StatusOK); !strings.Contains(page, `<dd id="oldest">none</dd>`) {
		t.Errorf("status with nothing pending:\n%s", page)
	}
	id := r.acceptOnly("hold")
	job := id + ".retry-later.0"
	// The file also matches notify, whose single attempt must be over (it
	// is dead then), or it could still be pending and be the older of the two.
	testwait.Until(t, 10*time.Second, "the held delivery has tried once and the other is over", func() bool {
		j, err := r.store.Job(t.Context(), job)
		if err != nil || len(j.Attempts) != 1 {
			return false
		}
		n, err := r.store.Job(t.Context(), id+".notify.0")
		return err == nil && n.State != store.Pending
	})
	page := r.get("/status", http.StatusOK)
	for _, want := range []string{" old: <a href=\"/events/" + id + "\">" + job + "</a>", "<dt>Deliveries pending</dt><dd>1</dd>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page lacks %q:\n%s", want, page)
		}
	}
}
