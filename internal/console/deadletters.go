package console

import (
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/livehook/livehook/engine/store"
)

// DeadLetters is the engine API the dead-letters pages read and change.
type DeadLetters interface {
	DeadLetters(f store.DeadFilter) ([]*store.Job, error)
	DeadGroups(f store.DeadFilter) ([]store.DeadGroup, error)
	ReplayDeadLetter(id string) (*store.Job, error)
	ReplayDeadLetters(ids []string) (int, error)
	DeleteDeadLetters(ids []string) (int, error)
}

// maxBulk bounds the dead letters one bulk replay or delete runs: each
// replay is a store write.
const maxBulk = 1000

// Bulk operations.
const (
	opReplay = "replay"
	opDelete = "delete"
)

func (c *console) deadRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /deadletters", c.deadLetters)
	mux.HandleFunc("GET /deadletters/preview", c.deadPreview)
	mux.HandleFunc("POST /deadletters/bulk", c.post(c.deadBulk))
	mux.HandleFunc("POST /deadletters/{id}/replay", c.post(c.replayDeadLetter))
	mux.HandleFunc("POST /deadletters/{id}/delete", c.post(c.deleteDeadLetter))
}

// localTime is how the filter's times are written: a datetime-local
// input's value, read as UTC.
const localTime = "2006-01-02T15:04"

// deadQuery is a dead-letter filter as the page's query carries it.
type deadQuery struct {
	Action, Error string
	From, To      string // as typed, localTime in UTC
	Limit         int
	Before        string
}

func parseDeadQuery(q url.Values) (deadQuery, store.DeadFilter, error) {
	d := deadQuery{Action: q.Get("action"), Error: q.Get("error"), From: q.Get("from"), To: q.Get("to"), Before: q.Get("before")}
	var err error
	if d.Limit, err = limitParam(q); err != nil {
		return d, store.DeadFilter{}, err
	}
	f := store.DeadFilter{Limit: d.Limit, Before: d.Before, Action: d.Action, Error: d.Error}
	for _, t := range []struct {
		name, v string
		to      *time.Time
	}{{"from", d.From, &f.From}, {"to", d.To, &f.To}} {
		if t.v == "" {
			continue
		}
		at, err := time.Parse(localTime, t.v)
		if err != nil {
			if at, err = time.Parse(localTime+":05", t.v); err != nil {
				return d, f, fmt.Errorf("%s: want a time like 2026-12-02T14:30 (UTC)", t.name)
			}
		}
		*t.to = at.UTC()
	}
	return d, f, nil
}

// values is the filter as a query, without the cursor and with extra
// settings.
func (d deadQuery) values(extra ...string) url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"action": d.Action, "error": d.Error, "from": d.From, "to": d.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if d.Limit != defaultLimit && d.Limit != 0 {
		v.Set("limit", strconv.Itoa(d.Limit))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func (d deadQuery) url(path string, extra ...string) template.URL {
	v := d.values(extra...)
	if len(v) == 0 {
		return template.URL(path)
	}
	return template.URL(path + "?" + v.Encode()) // values escaped by Encode
}

// Filtered reports whether the filter selects less than every dead letter.
func (d deadQuery) Filtered() bool {
	return d.Action != "" || d.Error != "" || d.From != "" || d.To != ""
}

type deadGroupRow struct {
	store.DeadGroup
	Show template.URL // the listing of the group's dead letters
}

type deadPage struct {
	Query  deadQuery
	Groups []deadGroupRow
	Jobs   []*store.Job
	Next   template.URL // the next page; empty on the last
	Newest template.URL // the first page with the same filter; empty on it
	Replay template.URL // the bulk previews of the filter
	Delete template.URL
	Notice string
}

func (c *console) deadLetters(w http.ResponseWriter, r *http.Request) {
	if c.o.Dead == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	q := r.URL.Query()
	d, f, err := parseDeadQuery(q)
	if err != nil {
		c.fail(w, http.StatusBadRequest, err)
		return
	}
	p := deadPage{Query: d, Notice: deadNotice(q)}
	if p.Jobs, err = c.o.Dead.DeadLetters(f); err != nil {
		c.failErr(w, err)
		return
	}
	// The groups of what the filter selects, the group itself aside: a
	// filtered page still shows where its dead letters stand among the
	// others of the same action and time.
	gf := f
	gf.Error = ""
	groups, err := c.o.Dead.DeadGroups(gf)
	if err != nil {
		c.failErr(w, err)
		return
	}
	for _, g := range groups {
		show := d
		show.Action, show.Error = g.Action, g.Error
		p.Groups = append(p.Groups, deadGroupRow{DeadGroup: g, Show: show.url("/deadletters")})
	}
	if len(p.Jobs) == d.Limit {
		p.Next = d.url("/deadletters", "before", p.Jobs[len(p.Jobs)-1].ID)
	}
	if d.Before != "" {
		p.Newest = d.url("/deadletters")
	}
	p.Replay, p.Delete = d.url("/deadletters/preview", "op", opReplay), d.url("/deadletters/preview", "op", opDelete)
	c.render(w, http.StatusOK, "deadletters", "Dead letters", p)
}

// deadNotice says what the POST that redirected here did.
func deadNotice(q url.Values) string {
	switch {
	case q.Get("replayed") != "":
		return "Dead letter " + q.Get("replayed") + " replayed: it will be delivered again."
	case q.Get("deleted") != "":
		return "Dead letter " + q.Get("deleted") + " deleted."
	case q.Get("bulk") == opReplay:
		return fmt.Sprintf("Replayed %s of the %s dead letters previewed: they will be delivered again.", q.Get("n"), q.Get("of"))
	case q.Get("bulk") == opDelete:
		return fmt.Sprintf("Deleted %s of the %s dead letters previewed.", q.Get("n"), q.Get("of"))
	}
	return ""
}

type previewPage struct {
	Op    string
	Query deadQuery
	Count int
	More  bool // the filter selects more than maxBulk: only the newest run
	Max   int
	Jobs  []*store.Job // the first ones, to show
	Token string
	Back  template.URL
}

// previewShown bounds the dead letters a preview lists.
const previewShown = 20

func (c *console) deadPreview(w http.ResponseWriter, r *http.Request) {
	if c.o.Dead == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	q := r.URL.Query()
	op := q.Get("op")
	if op != opReplay && op != opDelete {
		c.fail(w, http.StatusBadRequest, errors.New("op: want replay or delete"))
		return
	}
	d, f, err := parseDeadQuery(q)
	if err != nil {
		c.fail(w, http.StatusBadRequest, err)
		return
	}
	// Exactly the dead letters listed now run: their ids are kept for the
	// POST, so one that dies after the preview is not swept in.
	f.Before, f.Limit = "", maxBulk+1
	jobs, err := c.o.Dead.DeadLetters(f)
	if err != nil {
		c.failErr(w, err)
		return
	}
	p := previewPage{Op: op, Query: d, Max: maxBulk, Back: d.url("/deadletters")}
	if len(jobs) > maxBulk {
		jobs, p.More = jobs[:maxBulk], true
	}
	p.Count, p.Jobs = len(jobs), jobs[:min(len(jobs), previewShown)]
	if p.Count > 0 && !c.o.ReadOnly {
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		p.Token = c.previews.put(op, ids, c.o.Now())
	}
	title := "Replay dead letters"
	if op == opDelete {
		title = "Delete dead letters"
	}
	c.render(w, http.StatusOK, "deadpreview", title, p)
}

func (c *console) deadBulk(w http.ResponseWriter, r *http.Request) {
	if c.o.Dead == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	op := r.PostFormValue("op")
	ids, ok := c.previews.take(r.PostFormValue("preview"), op, c.o.Now())
	if !ok {
		c.fail(w, http.StatusConflict, errors.New("this preview has expired or already ran: preview again"))
		return
	}
	run := c.o.Dead.ReplayDeadLetters
	if op == opDelete {
		run = c.o.Dead.DeleteDeadLetters
	}
	n, err := run(ids)
	if err != nil {
		c.failErr(w, fmt.Errorf("%s dead letters: %d of %d done: %w", op, n, len(ids), err))
		return
	}
	http.Redirect(w, r, "/deadletters?"+url.Values{"bulk": {op}, "n": {strconv.Itoa(n)}, "of": {strconv.Itoa(len(ids))}}.Encode(), http.StatusSeeOther)
}

func (c *console) replayDeadLetter(w http.ResponseWriter, r *http.Request) {
	if c.o.Dead == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	j, err := c.o.Dead.ReplayDeadLetter(r.PathValue("id"))
	if err != nil {
		c.failErr(w, err)
		return
	}
	http.Redirect(w, r, "/deadletters?replayed="+url.QueryEscape(j.ID), http.StatusSeeOther)
}

func (c *console) deleteDeadLetter(w http.ResponseWriter, r *http.Request) {
	if c.o.Dead == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon keeps no event history"))
		return
	}
	id := r.PathValue("id")
	n, err := c.o.Dead.DeleteDeadLetters([]string{id})
	if err != nil {
		c.failErr(w, err)
		return
	}
	if n == 0 {
		c.failErr(w, fmt.Errorf("job %s: %w (replayed or deleted meanwhile?)", id, store.ErrNotDead))
		return
	}
	http.Redirect(w, r, "/deadletters?deleted="+url.QueryEscape(id), http.StatusSeeOther)
}

// previews keeps what each bulk preview showed, for a while, in memory:
// a restart forgets them and the operator previews again.
type previews struct {
	mu sync.Mutex
	m  map[string]preview
}

type preview struct {
	op  string
	ids []string
	at  time.Time
}

// Bounds of the previews kept.
const (
	previewTTL  = 15 * time.Minute
	maxPreviews = 64
)

func (p *previews) put(op string, ids []string, now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]preview{}
	}
	for k, v := range p.m {
		if now.Sub(v.at) > previewTTL {
			delete(p.m, k)
		}
	}
	for len(p.m) >= maxPreviews { // the oldest goes first
		var oldest string
		for k, v := range p.m {
			if oldest == "" || v.at.Before(p.m[oldest].at) {
				oldest = k
			}
		}
		delete(p.m, oldest)
	}
	token := rand.Text()
	p.m[token] = preview{op: op, ids: ids, at: now}
	return token
}

// take hands out a preview's ids once.
func (p *previews) take(token, op string, now time.Time) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[token]
	if !ok || v.op != op || now.Sub(v.at) > previewTTL {
		return nil, false
	}
	delete(p.m, token)
	return v.ids, true
}
