package console_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/console"

	"github.com/livehook/livehook/internal/testwait"
)

// probe is an action that fails for good on streams "bad" and "gone"
// until fixed, and is busy on "hold". runs counts its attempts.
type probe struct {
	fixed atomic.Bool
	runs  atomic.Int64
}

func (p *probe) Step(actionapi.Params) (actionapi.Step, error) { return p, nil }
func (p *probe) Close() error                                  { return nil }
func (p *probe) Plan(in actionapi.Input) (actionapi.Plan, error) {
	return actionapi.Plan{Target: "probe", Payload: in}, nil
}
func (p *probe) Do(_ context.Context, pl actionapi.Plan) actionapi.Result {
	p.runs.Add(1)
	switch stream := pl.Payload.(actionapi.Input).Event.Stream; {
	case stream == "hold":
		return actionapi.Result{Outcome: actionapi.Retryable, Detail: "HTTP 503: busy", RetryAfter: time.Hour}
	case p.fixed.Load():
	case stream == "bad":
		return actionapi.Result{Outcome: actionapi.Permanent, Detail: "HTTP 400: <b>no such channel</b>"}
	case stream == "gone":
		return actionapi.Result{Outcome: actionapi.Permanent, Detail: "HTTP 410: channel gone"}
	}
	return actionapi.Result{Outcome: actionapi.Delivered, Detail: "HTTP 200: ok", IDs: map[string]string{"RequestId": "req-1"}}
}

const testRules = `
actions:
  hook:
    type: probe
    delivery: { max_attempts: 1 }
  pager:
    type: probe
    delivery: { max_attempts: 1 }
  later:
    type: probe
rules:
  - name: page-gone
    when: stream == "gone"
    do: [ { action: pager } ]
  - name: retry-later
    when: stream == "hold"
    do: [ { action: later } ]
  - name: quiet
    mode: shadow
    when: stream == "quiet"
    do: [ { action: hook } ]
  - name: notify
    when: kind == "file"
    do: [ { action: hook } ]
  - name: bursts
    when: stream == "burst"
    count: { at_least: 3, within: 10m }
    do: [ { action: hook } ]
  - name: file-then-nothing
    when: stream == "burst"
    expect: { match: event == "never", within: 1h }
    do: [ { action: hook } ]
`

type rig struct {
	t     testing.TB
	eng   *engine.Engine
	store *store.Local
	probe *probe
	rules string
	srv   *httptest.Server
	n     int
}

// newRig starts an engine and a console over it; opts adjust the
// console's options.
func newRig(t testing.TB, opts ...func(*console.Options)) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{t: t, probe: &probe{}, rules: filepath.Join(dir, "rules.yaml")}
	if err := os.WriteFile(r.rules, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "data"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.store = st
	reg := func() (*actionapi.Registry, error) {
		reg := actionapi.NewRegistry()
		err := reg.Add(actionapi.Type{Name: "probe", Open: func(actionapi.Settings) (actionapi.Instance, error) { return r.probe, nil }})
		return reg, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.eng, err = engine.New(engine.Options{RulesPath: r.rules, Store: st, Registry: reg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.eng.Stop(ctx)
		st.Close()
	})
	o := console.Options{
		Events:     r.eng,
		Dead:       r.eng,
		Playground: r.eng,
		Rules:      r.eng.Report,
		State:      r.eng.State,
		Status: func(ctx context.Context) (console.Status, error) {
			s, err := r.eng.Status(ctx)
			return console.Status{Version: "v9.9.9-test", Started: time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC), Store: "local",
				Stats: s.Stats, OldestPending: s.OldestPending}, err
		},
		Logger: logger,
	}
	for _, f := range opts {
		f(&o)
	}
	h, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	return r
}

// accept hands the engine a recording-file callback of stream and waits
// until every delivery it made has settled.
func (r *rig) accept(stream string, payload map[string]any) string {
	r.t.Helper()
	id := r.acceptWith(stream, payload)
	r.settled(id)
	return id
}

// acceptOnly hands the engine a callback and does not wait.
func (r *rig) acceptOnly(stream string) string {
	r.t.Helper()
	return r.acceptWith(stream, nil)
}

func (r *rig) acceptWith(stream string, payload map[string]any) string {
	r.t.Helper()
	r.n++
	ev := &event.Event{Source: event.SourceRecord, Kind: event.KindFile, Domain: "play.example.com", App: "live",
		Stream: stream, URI: "record/" + stream + ".m3u8", ReceivedAt: time.Now().UTC(), Payload: payload}
	id, err := r.eng.Accept(context.Background(), ev, stream+"-"+string(rune('a'+r.n)))
	if err != nil {
		r.t.Fatal(err)
	}
	return id
}

// settled waits until event id is evaluated and none of its deliveries
// is pending.
func (r *rig) settled(id string) *store.EventDetail {
	r.t.Helper()
	var d *store.EventDetail
	var err error
	if !testwait.Within(10*time.Second, func() bool {
		d, err = r.eng.Event(id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			r.t.Fatal(err)
		}
		return err == nil && len(d.Jobs) > 0 && !pending(d.Jobs)
	}) {
		r.t.Fatalf("event %s did not settle: %+v, %v", id, d, err)
	}
	return d
}

func pending(jobs []*store.Job) bool {
	for _, j := range jobs {
		if j.State == store.Pending {
			return true
		}
	}
	return false
}

func (r *rig) get(path string, want int) string {
	r.t.Helper()
	res, err := http.Get(r.srv.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	return body(r.t, res, want)
}

// post submits a form, not following the redirect it answers with.
func (r *rig) post(path string, form url.Values, header http.Header, want int) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	b := body(r.t, res, want)
	res.Body = io.NopCloser(strings.NewReader(b))
	return res
}

func body(t testing.TB, res *http.Response, want int) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d:\n%s", res.Request.Method, res.Request.URL.Path, res.StatusCode, want, b)
	}
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([A-Z2-7]+)"`)

func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the page:\n%s", page)
	}
	return m[1]
}

func TestEventShowsRulesAndDeliveries(t *testing.T) {
	r := newRig(t)
	id := r.accept("room1", map[string]any{"note": "<script>alert(1)</script>"})

	list := r.get("/", http.StatusOK)
	for _, want := range []string{`href="/events/` + id + `"`, "notify", "play.example.com/live/room1", "aliyun_live_record · file"} {
		if !strings.Contains(list, want) {
			t.Errorf("events page lacks %q:\n%s", want, list)
		}
	}
	page := r.get("/events/"+id, http.StatusOK)
	for _, want := range []string{
		"matched: <strong>notify</strong>",
		"notify → hook",
		`class="state state-delivered">delivered<`,
		"HTTP 200: ok", "RequestId=req-1",
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`<time datetime="`,
		`action="/events/` + id + `/replay"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Errorf("the payload's script is not escaped:\n%s", page)
	}
}

func TestEventsPagingAndFilters(t *testing.T) {
	r := newRig(t)
	var ids []string
	for _, s := range []string{"s1", "s2", "s3", "s4", "s5"} {
		ids = append(ids, r.accept(s, nil))
	}
	seen, _ := r.pageThrough("/?limit=2&source="+event.SourceRecord, eventRow, "source", "limit")
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("pages showed %v, want each event once, newest first: %v", seen, want)
	}

	if html := r.get("/?source=aliyun_vod", http.StatusOK); !strings.Contains(html, "No events match these filters") {
		t.Errorf("a source with no events:\n%s", html)
	}
	if html := r.get("/?rule=notify&limit=1", http.StatusOK); !strings.Contains(html, ids[4]) || strings.Contains(html, ids[3]) {
		t.Errorf("rule filter, one per page:\n%s", html)
	}
	if html := r.get("/?limit=0", http.StatusBadRequest); !strings.Contains(html, "limit: want a number from 1 to 1000") {
		t.Errorf("bad limit:\n%s", html)
	}
	// The live tail reloads the newest page, filters kept; older pages
	// never change, so they do not.
	const refresh = `<meta http-equiv="refresh" content="5">`
	if html := r.get("/?rule=notify", http.StatusOK); strings.Contains(html, refresh) || !strings.Contains(html, `href="/?rule=notify&amp;tail=1" id="tail">Live tail<`) {
		t.Errorf("events page without the tail:\n%s", html)
	}
	if html := r.get("/?rule=notify&tail=1", http.StatusOK); !strings.Contains(html, refresh) || !strings.Contains(html, `href="/?rule=notify" id="tail">Stop<`) {
		t.Errorf("events page with the tail:\n%s", html)
	}
	if html := r.get("/?tail=1&before="+ids[2], http.StatusOK); strings.Contains(html, refresh) {
		t.Errorf("an older page tails:\n%s", html)
	}
	r.get("/events/01JDZ0000000000000000000000", http.StatusNotFound)
	r.get("/nowhere", http.StatusNotFound)
}

func TestReplayDeadLetterFromThePage(t *testing.T) {
	r := newRig(t)
	id := r.accept("bad", nil)
	dead := id + ".notify.0"

	page := r.get("/deadletters", http.StatusOK)
	for _, want := range []string{`id="dead-` + dead + `"`, "HTTP 400: &lt;b&gt;no such channel&lt;/b&gt;", `action="/deadletters/` + dead + `/replay"`} {
		if !strings.Contains(page, want) {
			t.Errorf("dead letters page lacks %q:\n%s", want, page)
		}
	}
	token := csrf(t, page)

	// Without the page's token, or from another site, nothing runs.
	r.post("/deadletters/"+dead+"/replay", url.Values{"csrf": {"forged"}}, nil, http.StatusForbidden)
	r.post("/deadletters/"+dead+"/replay", url.Values{"csrf": {token}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden)
	if d := r.settled(id); d.Jobs[0].State != store.Dead {
		t.Fatalf("a refused replay ran: %+v", d.Jobs[0])
	}

	r.probe.fixed.Store(true)
	res := r.post("/deadletters/"+dead+"/replay", url.Values{"csrf": {token}}, nil, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/deadletters?replayed="+url.QueryEscape(dead) {
		t.Errorf("replay redirects to %q", loc)
	}
	d := r.settled(id)
	if j := d.Jobs[0]; j.State != store.Delivered || len(j.Attempts) != 2 {
		t.Fatalf("after replay: %+v", j)
	}
	if page := r.get("/deadletters?replayed="+url.QueryEscape(dead), http.StatusOK); !strings.Contains(page, "replayed: it will be delivered again") || strings.Contains(page, `id="dead-`) {
		t.Errorf("dead letters page after the replay:\n%s", page)
	}
	page = r.get("/events/"+id, http.StatusOK)
	for _, want := range []string{"permanent", "delivered", "HTTP 400", "HTTP 200: ok"} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks the attempt %q:\n%s", want, page)
		}
	}
	// A delivered job is no dead letter.
	if page := string(r.post("/deadletters/"+dead+"/replay", url.Values{"csrf": {token}}, nil, http.StatusConflict).Header.Get("Content-Type")); !strings.HasPrefix(page, "text/html") {
		t.Errorf("refusal is %q, want an HTML page", page)
	}
}

func TestReplayEventFromThePage(t *testing.T) {
	r := newRig(t)
	id := r.accept("room1", nil)
	token := csrf(t, r.get("/events/"+id, http.StatusOK))
	res := r.post("/events/"+id+"/replay", url.Values{"csrf": {token}}, nil, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/events/"+id+"?replayed=1" {
		t.Fatalf("replay redirects to %q", loc)
	}
	d := r.settled(id)
	if len(d.Jobs) != 2 || d.Replays != 1 {
		t.Fatalf("after a replay: %d jobs, %d replays", len(d.Jobs), d.Replays)
	}
	page := r.get("/events/"+id+"?replayed=1", http.StatusOK)
	for _, want := range []string{"Replayed: 1 deliveries scheduled", `id="job-` + d.Jobs[0].ID + `"`, `id="job-` + d.Jobs[1].ID + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks %q:\n%s", want, page)
		}
	}
}

func TestRulesStatusAndState(t *testing.T) {
	r := newRig(t)
	r.accept("bad", nil)

	page := r.get("/rules", http.StatusOK)
	for _, want := range []string{`id="rule-notify"`, `<code>kind == &#34;file&#34;</code>`, "hook (probe)", r.eng.Report().Hash, ": ok"} {
		if !strings.Contains(page, want) {
			t.Errorf("rules page lacks %q:\n%s", want, page)
		}
	}
	if err := os.WriteFile(r.rules, []byte("rules:\n  - name: x\n    when: kind ==\n    do: [ { action: nowhere } ]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.eng.Reload(); err == nil {
		t.Fatal("a broken reload succeeded")
	}
	page = r.get("/rules", http.StatusOK)
	diags := r.eng.LastReload().Diagnostics
	if len(diags) == 0 {
		t.Fatal("the failed reload has no diagnostics")
	}
	for _, want := range []string{"failed; the previous rules stay in force", `id="rule-notify"`,
		"<code>" + diags[0].File + ":" + itoa(diags[0].Line) + ":" + itoa(diags[0].Col) + "</code>"} {
		if !strings.Contains(page, want) {
			t.Errorf("rules page after a failed reload lacks %q:\n%s", want, page)
		}
	}

	page = r.get("/status", http.StatusOK)
	for _, want := range []string{"v9.9.9-test", `<dt>Up since</dt><dd><time datetime="2026-12-01T08:30:00Z" title="2026-12-01 08:30:00 UTC">2026-12-01 08:30:00 UTC</time></dd>`, "<dt>Store</dt><dd>local</dd>", "<dt>Deliveries pending</dt><dd>0</dd>", `<a href="/deadletters">1</a>`, "<strong>failed</strong>"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q:\n%s", want, page)
		}
	}
	if page := r.get("/state", http.StatusOK); !strings.Contains(page, "No state is kept") {
		t.Errorf("state page before any event over time:\n%s", page)
	}
	r.accept("burst", nil)
	keys, err := r.eng.State("file-then-nothing", "", 10)
	if err != nil || len(keys) != 1 || keys[0].Due == nil {
		t.Fatalf("state of the expectation: %+v, %v", keys, err)
	}
	page = r.get("/state", http.StatusOK)
	for _, want := range []string{"<td>bursts</td>", "1 of 3 in 10m0s", "<td>file-then-nothing</td>", "<code>stream=burst</code>",
		`<time datetime="` + keys[0].Due.UTC().Format(time.RFC3339Nano) + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("state page lacks %q:\n%s", want, page)
		}
	}
	if page := r.get("/state?rule=bursts", http.StatusOK); strings.Contains(page, "file-then-nothing") {
		t.Errorf("state filtered by rule shows another:\n%s", page)
	}
	r.get("/state?rule=nosuch", http.StatusBadRequest)
}

func TestPagesForbidInlineScript(t *testing.T) {
	r := newRig(t)
	res, err := http.Get(r.srv.URL + "/static/console.js")
	if err != nil {
		t.Fatal(err)
	}
	body(t, res, http.StatusOK)
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if page := r.get("/", http.StatusOK); !strings.Contains(page, `<script src="/static/console.js" defer></script>`) || strings.Count(page, "<script") != 1 {
		t.Errorf("the page has inline script:\n%s", page)
	}
}

func TestReadOnlyConsole(t *testing.T) {
	r := newRig(t, func(o *console.Options) { o.ReadOnly = true })
	id := r.accept("bad", nil)
	dead := id + ".notify.0"
	for _, path := range []string{"/events/" + id, "/deadletters"} {
		if page := r.get(path, http.StatusOK); strings.Contains(page, "<form method=\"post\"") || !strings.Contains(page, id) {
			t.Errorf("read-only %s offers a change, or lacks the event:\n%s", path, page)
		}
	}
	for _, path := range []string{"/events/" + id + "/replay", "/deadletters/" + dead + "/replay"} {
		if page := r.post(path, url.Values{}, nil, http.StatusForbidden); !strings.Contains(bodyOf(t, page), "read-only") {
			t.Errorf("read-only POST %s", path)
		}
	}
	if d := r.settled(id); len(d.Jobs) != 1 || d.Jobs[0].State != store.Dead {
		t.Errorf("a read-only console replayed: %+v", d.Jobs)
	}
}

func bodyOf(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itoa(n int) string { return strconv.Itoa(n) }
