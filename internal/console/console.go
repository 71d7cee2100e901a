// Package console serves livehook's web console on the admin listener:
// server-rendered pages of events, deliveries, dead letters, rules, state
// over time and status, with replay as plain HTML forms. The pages read
// the same engine API as the JSON endpoints; the assets are in the binary.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Events is the engine API the event pages read.
type Events interface {
	Events(f store.EventFilter) ([]*store.EventRecord, error)
	Event(id string) (*store.EventDetail, error)
	ReplayEvent(id string) ([]*store.Job, error)
}

// Status is what the status page shows besides the last reload.
type Status struct {
	Version string
	Started time.Time   // when the daemon started serving
	Store   string      // the store backend
	Stats   store.Stats // queue depth, dead letters, state kept
	// OldestPending is the pending delivery created earliest; nil when
	// none is pending.
	OldestPending *store.Job
}

// Options configure the console.
type Options struct {
	Events     Events
	Dead       DeadLetters               // the dead-letters page
	Playground Playground                // the playground page
	Rules      func() engine.RulesReport // already redacted
	State      func(rule, key string, limit int) ([]engine.StateReport, error)
	Status     func(ctx context.Context) (Status, error)
	// ReadOnly leaves the replay and delete buttons out and refuses every
	// POST.
	ReadOnly bool
	Logger   *slog.Logger
	// Now is the clock ages are measured on; default time.Now.
	Now func() time.Time
}

// Page sizes.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

type console struct {
	o    Options
	page map[string]*template.Template
	// csrf is the token every state-changing form carries. It is random
	// per process and only shown to whoever may read the pages, so a page
	// on another site cannot know it.
	csrf string
	// previews holds the dead letters each bulk preview showed, for the
	// POST that runs exactly those.
	previews previews
}

// New returns the console handler, which serves the pages at / and its
// assets at /static/.
func New(o Options) (http.Handler, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &console{o: o, page: map[string]*template.Template{}, csrf: rand.Text()}
	for _, name := range []string{"events", "event", "deadletters", "deadpreview", "playground", "rules", "state", "status", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).Funcs(playFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		c.page[name] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", c.events)
	mux.HandleFunc("GET /events/{id}", c.event)
	mux.HandleFunc("POST /events/{id}/replay", c.post(c.replayEvent))
	c.deadRoutes(mux)
	mux.HandleFunc("GET /playground", c.playground)
	mux.HandleFunc("GET /rules", c.rules)
	mux.HandleFunc("GET /state", c.state)
	mux.HandleFunc("GET /status", c.status)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, http.StatusNotFound, errors.New("no such page: "+r.Method+" "+r.URL.Path))
	})
	// Browsers say where a request comes from (Sec-Fetch-Site, Origin):
	// a cross-site POST is refused before the token is even looked at.
	return headers(http.NewCrossOriginProtection().Handler(mux)), nil
}

// headers sets what every console answer carries: no inline script or
// style may run, and no other site may frame the pages.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// post checks a form's CSRF token before h runs.
func (c *console) post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.o.ReadOnly {
			c.fail(w, http.StatusForbidden, errors.New("read-only: this console changes nothing"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(c.csrf)) != 1 {
			c.fail(w, http.StatusForbidden, errors.New("the form has expired or came from another site: reload the page and try again"))
			return
		}
		h(w, r)
	}
}

type view struct {
	Title    string
	Refresh  int // seconds after which the page reloads itself; 0 never
	Nav      string
	CSRF     string
	ReadOnly bool
	Data     any
}

// tailEvery is how often, in seconds, the live tail reloads the events.
const tailEvery = 5

func (c *console) render(w http.ResponseWriter, status int, name, title string, data any) {
	c.renderView(w, status, name, view{Title: title, Data: data})
}

func (c *console) renderView(w http.ResponseWriter, status int, name string, v view) {
	v.Nav, v.CSRF, v.ReadOnly = name, c.csrf, c.o.ReadOnly
	var buf bytes.Buffer
	if err := c.page[name].Execute(&buf, v); err != nil {
		c.o.Logger.Error("console: render failed", "page", name, "err", err)
		http.Error(w, "the page could not be shown; see the daemon's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client may be gone; nothing to do about it
}

func (c *console) fail(w http.ResponseWriter, status int, err error) {
	c.render(w, status, "error", http.StatusText(status), err.Error())
}

// failErr answers err with the status it deserves.
func (c *console) failErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.fail(w, http.StatusNotFound, err)
	case errors.Is(err, store.ErrNotDead):
		c.fail(w, http.StatusConflict, err)
	case errors.Is(err, engine.ErrNoSuchRule):
		c.fail(w, http.StatusNotFound, err)
	default:
		c.fail(w, http.StatusServiceUnavailable, err)
	}
}

func limitParam(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 || n > maxLimit {
		return 0, fmt.Errorf("limit: want a number from 1 to %d", maxLimit)
	}
	return n, nil
}

type eventsPage struct {
	store.EventFilter
	From, To string       // the time range as the form's inputs hold it (UTC)
	Filtered bool         // a filter or a cursor narrows the listing
	Outcomes []string     // the outcome filter's choices
	Tail     bool         // the page reloads itself to show new events
	TailURL  template.URL // the same view with the live tail toggled
	Events   []*store.EventRecord
	Next     template.URL // the next page; empty on the last
	Newest   template.URL // the first page with the same filters
}

// formTime is how a datetime-local input holds a time: UTC, no zone.
const formTime = "2006-01-02T15:04:05"

func (c *console) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := store.ParseEventQuery(q, defaultLimit)
	if err != nil {
		c.fail(w, http.StatusBadRequest, err)
		return
	}
	if c.o.Events == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	p := eventsPage{EventFilter: f, Outcomes: []string{store.OutcomeDelivered, store.OutcomePending, store.OutcomeDead, store.OutcomeNone, store.OutcomeDuplicate}}
	if !f.From.IsZero() {
		p.From = f.From.UTC().Format(formTime)
	}
	if !f.To.IsZero() {
		p.To = f.To.UTC().Format(formTime)
	}
	p.Events, err = c.o.Events.Events(f)
	if err != nil {
		c.failErr(w, err)
		return
	}
	keep := f.Query()
	p.Filtered = len(keep) > 0 || f.Before != ""
	if f.Limit != defaultLimit {
		keep.Set("limit", strconv.Itoa(f.Limit))
	}
	p.Newest = template.URL("/?" + keep.Encode()) // values escaped by Encode
	// Only the newest page tails: an older one would never change.
	p.Tail = q.Get("tail") == "1" && f.Before == ""
	if p.Tail {
		p.TailURL = p.Newest
	} else {
		tail := maps.Clone(keep)
		tail.Set("tail", "1")
		p.TailURL = template.URL("/?" + tail.Encode())
	}
	if len(p.Events) == f.Limit {
		keep.Set("before", p.Events[len(p.Events)-1].Event.ID)
		p.Next = template.URL("/?" + keep.Encode())
	}
	v := view{Title: "Events", Data: p}
	if p.Tail {
		v.Refresh = tailEvery
	}
	c.renderView(w, http.StatusOK, "events", v)
}

type eventPage struct {
	*store.EventDetail
	Fields   string // the event as rules see it, indented JSON
	Replayed int    // jobs a replay just scheduled; -1 when none was asked
}

func (c *console) event(w http.ResponseWriter, r *http.Request) {
	if c.o.Events == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	d, err := c.o.Events.Event(r.PathValue("id"))
	if err != nil {
		c.failErr(w, err)
		return
	}
	// The template escapes for HTML; JSON's own \u003c escapes would
	// show the payload otherwise than it was received.
	var fields bytes.Buffer
	enc := json.NewEncoder(&fields)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d.Event); err != nil {
		c.fail(w, http.StatusInternalServerError, fmt.Errorf("encode event %s: %w", d.Event.ID, err))
		return
	}
	p := eventPage{EventDetail: d, Fields: fields.String(), Replayed: -1}
	if n, err := strconv.Atoi(r.URL.Query().Get("replayed")); err == nil {
		p.Replayed = n
	}
	c.render(w, http.StatusOK, "event", "Event "+d.Event.ID, p)
}

func (c *console) replayEvent(w http.ResponseWriter, r *http.Request) {
	if c.o.Events == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	id := r.PathValue("id")
	jobs, err := c.o.Events.ReplayEvent(id)
	if err != nil {
		c.failErr(w, err)
		return
	}
	// After a POST, send the browser to a page it can reload safely.
	http.Redirect(w, r, "/events/"+url.PathEscape(id)+"?replayed="+strconv.Itoa(len(jobs)), http.StatusSeeOther)
}

func (c *console) rules(w http.ResponseWriter, _ *http.Request) {
	if c.o.Rules == nil {
		c.fail(w, http.StatusNotFound, errors.New("no rules to show"))
		return
	}
	c.render(w, http.StatusOK, "rules", "Rules", c.o.Rules())
}

type statePage struct {
	Rule, Key string
	Limit     int
	Keys      []engine.StateReport
}

func (c *console) state(w http.ResponseWriter, r *http.Request) {
	if c.o.State == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no state over time"))
		return
	}
	q := r.URL.Query()
	limit, err := limitParam(q)
	if err != nil {
		c.fail(w, http.StatusBadRequest, err)
		return
	}
	p := statePage{Rule: q.Get("rule"), Key: q.Get("key"), Limit: limit}
	if p.Keys, err = c.o.State(p.Rule, p.Key, limit); err != nil {
		c.fail(w, http.StatusBadRequest, err)
		return
	}
	c.render(w, http.StatusOK, "state", "State", p)
}

type statusPage struct {
	Status
	OldestAge string // how long the oldest pending delivery has waited
	Reload    engine.ReloadStatus
	Hash      string
}

func (c *console) status(w http.ResponseWriter, r *http.Request) {
	var p statusPage
	if c.o.Status != nil {
		st, err := c.o.Status(r.Context())
		if err != nil {
			c.failErr(w, err)
			return
		}
		p.Status = st
		if j := st.OldestPending; j != nil {
			p.OldestAge = max(c.o.Now().Sub(j.Created), 0).Round(time.Second).String()
		}
	}
	if c.o.Rules != nil {
		rep := c.o.Rules()
		p.Reload, p.Hash = rep.LastReload, rep.Hash
	}
	c.render(w, http.StatusOK, "status", "Status", p)
}

var funcs = template.FuncMap{
	// utc is how a time reads without script: the browser's script
	// rewrites it in the viewer's zone and keeps UTC on hover.
	"utc": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"rfc": func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"ms": func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	},
	"string": func(b json.RawMessage) string { return string(b) },
	"inc":    func(i int) int { return i + 1 },

	// outcome is how the listing names a delivery outcome.
	"outcome": func(o string) string {
		if o == store.OutcomeNone {
			return "no match"
		}
		return o
	},
	"add": func(n ...int) int {
		sum := 0
		for _, v := range n {
			sum += v
		}
		return sum
	},
}
