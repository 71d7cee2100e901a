package store

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// MaxEventLimit bounds one page of events.
const MaxEventLimit = 1000

// timeForms are what from and to accept: RFC 3339, or a time without a
// zone (as an HTML datetime-local input sends it), read as UTC.
var timeForms = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"}

// ParseEventQuery reads an EventFilter from a URL's query, the form the
// admin API and the console share: source, kind, stream (a prefix), rule,
// outcome, from, to, before (a cursor) and limit (def when absent).
func ParseEventQuery(q url.Values, def int) (EventFilter, error) {
	f := EventFilter{Limit: def, Source: q.Get("source"), Kind: q.Get("kind"), Stream: q.Get("stream"),
		Rule: q.Get("rule"), Outcome: q.Get("outcome"), Before: q.Get("before")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > MaxEventLimit {
			return f, fmt.Errorf("limit: want a number from 1 to %d", MaxEventLimit)
		}
		f.Limit = n
	}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := parseTime(v)
		if err != nil {
			return f, fmt.Errorf("%s: want a time such as 2026-12-01T08:30:00Z or 2026-12-01T08:30 (UTC), not %q", p.name, v)
		}
		*p.to = t
	}
	return f, f.Check()
}

func parseTime(v string) (time.Time, error) {
	var err error
	for _, form := range timeForms {
		var t time.Time
		if t, err = time.Parse(form, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, err
}

// Query is f as ParseEventQuery reads it, without the limit and the
// cursor: the filters a link to another page of the same listing keeps.
func (f EventFilter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"source": f.Source, "kind": f.Kind, "stream": f.Stream, "rule": f.Rule, "outcome": f.Outcome} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	return q
}
