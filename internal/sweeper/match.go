package sweeper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/store"
)

// callback is one callback Aliyun sent, with the retries it recorded of
// it: records about the same thing (what) less than rules.SweepSettle
// apart.
type callback struct {
	ev           *event.Event // decoded from its first record
	keys         []string     // each record's dedupe identity; the first is the callback's
	what         string
	first, last  time.Time
	typ, rawTime string // of the first record, for the log
	result       string
}

// callbacks reads the records of one source and gathers them into the
// callbacks sent from from on. A callback whose first record is earlier
// belongs to the sweep that covered that time.
func (s *Sweeper) callbacks(recs []record, from time.Time, counts *Counts, rep *Report) []*callback {
	type read struct {
		r   record
		ev  *event.Event
		key string
	}
	var ok []read
	for _, r := range recs {
		ev, key, err := s.read(r)
		if err != nil {
			if !r.at.Before(from) {
				counts.Records++
				counts.Failed++
				rep.fail(s.log, r.source, fmt.Errorf("%s record of %s/%s/%s sent %s: %w", r.typ, r.domain, r.app, r.stream, r.rawTime, err))
			}
			continue
		}
		ok = append(ok, read{r, ev, key})
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].r.at.Before(ok[j].r.at) })
	var out []*callback
	open := map[string]*callback{}
	for _, x := range ok {
		what := about(x.ev)
		if c := open[what]; c != nil && x.r.at.Sub(c.last) <= rules.SweepSettle {
			c.keys = append(c.keys, x.key)
			c.last = x.r.at
			if c.first.Before(from) {
				continue
			}
			counts.Records++
			continue
		}
		c := &callback{ev: x.ev, keys: []string{x.key}, what: what, first: x.r.at, last: x.r.at,
			typ: x.r.typ, rawTime: x.r.rawTime, result: x.r.result}
		open[what] = c
		if c.first.Before(from) {
			continue
		}
		counts.Records++
		counts.Callbacks++
		out = append(out, c)
	}
	return out
}

// read decodes a record through its source's descriptor, as intake would
// have decoded the callback, and takes its dedupe identity likewise.
func (s *Sweeper) read(r record) (*event.Event, string, error) {
	if r.at.IsZero() {
		return nil, "", fmt.Errorf("NotifyTime %q is not a time in yyyy-MM-ddTHH:mm:ssZ", r.rawTime)
	}
	src, ok := s.opts.Sources.Lookup(r.source)
	if !ok || src.Name != r.source {
		return nil, "", fmt.Errorf("source %s is not built in", r.source)
	}
	body := bytes.TrimSpace([]byte(r.content))
	if len(body) == 0 {
		return nil, "", fmt.Errorf("NotifyContent is empty")
	}
	// The docs' own example puts a date before the JSON; the callback is
	// the object.
	if i := bytes.IndexByte(body, '{'); i > 0 && !json.Valid(body) && json.Valid(body[i:]) {
		body = body[i:]
	}
	req, err := src.FromFile(src.Name, body)
	if err != nil {
		return nil, "", fmt.Errorf("NotifyContent: %w", err)
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if r.source == event.SourceStream {
		fillStream(req, r)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	// Without the time Aliyun signed the callback at, the time it sent it
	// stands in, so that two equal callbacks sent at different times stay
	// two callbacks (an identity that takes no header ignores it).
	if req.Header.Get(auth.HeaderAliTimestamp) == "" {
		req.Header.Set(auth.HeaderAliTimestamp, unixString(r.at))
	}
	ev, err := src.Decode(req)
	if err != nil {
		return nil, "", fmt.Errorf("NotifyContent: %w", err)
	}
	return ev, src.DedupeKey(req, ev), nil
}

// fillStream completes a stream callback's query from the record, where
// NotifyContent leaves out what the record says anyway (the docs' example
// has only action and app).
func fillStream(req *sourceapi.Request, r record) {
	if req.Query == nil {
		return
	}
	for param, v := range map[string]string{"id": r.stream, "appname": r.app, "app": r.domain} {
		if req.Query.Get(param) == "" && v != "" {
			req.Query.Set(param, v)
		}
	}
}

// about is what a callback is about, the same whether intake decoded it
// or a record did: its source, kind and event, the domain it named, its
// stream, file and times. Payloads are left out: Aliyun's record of a
// callback need not spell it byte for byte as it was sent.
func about(ev *event.Event) string {
	domain := ev.IngestDomain // the domain the callback named, before domains: mapped it
	if domain == "" {
		domain = ev.Domain
	}
	return sourceapi.Key(ev.Source, ev.Kind, ev.Event, strings.ToLower(domain), ev.App, ev.Stream, ev.URI,
		strconv.FormatInt(ev.Time, 10), strconv.FormatInt(ev.StartTime, 10), strconv.FormatInt(ev.StopTime, 10))
}

// history is what livehook has of the swept sources since a time: the
// dedupe identities of its events, and when it received callbacks about
// each thing.
type history struct {
	keys     map[string]bool
	received map[string][]time.Time
}

// history reads the stored events received since since, newest first.
// Every source is read and the swept ones kept: a filtered listing looks
// at a bounded number of events, and could stop short.
func (s *Sweeper) history(ctx context.Context, since time.Time) (*history, error) {
	h := &history{keys: map[string]bool{}, received: map[string][]time.Time{}}
	before := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("sweep cut short: %w", context.Cause(ctx))
		}
		recs, err := s.opts.Engine.Events(store.EventFilter{Limit: 1000, Before: before})
		if err != nil {
			return nil, fmt.Errorf("read the events livehook has: %w", err)
		}
		for _, r := range recs {
			ev := r.Event
			if ev.ReceivedAt.Before(since) {
				return h, nil
			}
			if ev.Source != event.SourceRecord && ev.Source != event.SourceStream {
				continue
			}
			if r.DedupeKey != "" {
				h.keys[r.DedupeKey] = true
			}
			if !ev.Reconciled { // a reconciled event is known by its identity, which names its first record
				h.received[about(ev)] = append(h.received[about(ev)], ev.ReceivedAt)
			}
		}
		if len(recs) < 1000 {
			return h, nil
		}
		before = recs[len(recs)-1].Event.ID
	}
}

// had reports whether livehook has c: the identity of one of its records
// is an event's, or livehook received a callback about the same thing
// while Aliyun was sending it (the record cannot give the identity of a
// signed callback without its headers).
func (h *history) had(c *callback) bool {
	for _, k := range c.keys {
		if k != "" && h.keys[k] {
			return true
		}
	}
	for _, t := range h.received[c.what] {
		if !t.Before(c.first.Add(-rules.SweepSettle)) && !t.After(c.last.Add(rules.SweepSettle)) {
			return true
		}
	}
	return false
}
