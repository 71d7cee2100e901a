package event

import (
	"math"
	"strings"
	"time"
)

// What the decoders of Live's POSTed callbacks share: reading a field that
// Aliyun names one way in one callback and another way in the next
// (domain, DomainName), and reading times given as Unix seconds or as
// RFC 3339 text.

// text is the string value of the first of names that obj has; "" when
// none is there or it is null. A value of another type is refused, naming
// the field.
func text(obj map[string]any, names ...string) (string, error) {
	for _, name := range names {
		v, ok := obj[name]
		if !ok || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return "", refuse("bad_field", "field %q: want a string, got %s", name, jsonKind(v))
		}
		return s, nil
	}
	return "", nil
}

// bestText is text for fields whose form the docs do not give: a value of
// another type is left in the payload rather than refused.
func bestText(obj map[string]any, names ...string) string {
	s, _ := text(obj, names...)
	return s
}

// streamOf fills the stream a callback is about. Live's callbacks name it
// domain, app and stream in some bodies and DomainName, AppName and
// StreamName in others; all three are required, in either form.
func streamOf(ev *Event, obj map[string]any) error {
	for _, f := range []struct {
		names []string
		dst   *string
	}{
		{[]string{"domain", "DomainName"}, &ev.Domain},
		{[]string{"app", "AppName"}, &ev.App},
		{[]string{"stream", "StreamName"}, &ev.Stream},
	} {
		v, err := text(obj, f.names...)
		if err != nil {
			return err
		}
		if v == "" {
			return refuse("missing_field", "missing required field %q (or %q)", f.names[0], f.names[1])
		}
		*f.dst = v
	}
	return nil
}

// rfc3339 reads the time of field name as RFC 3339 text ("2017-12-08T09:26:17Z",
// how VOD writes its times); 0 when absent.
func rfc3339(obj map[string]any, name string) (int64, error) {
	s, err := text(obj, name)
	if err != nil || s == "" {
		return 0, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, refuse("bad_field", "field %q: want a time such as 2017-12-08T09:26:17Z, got %q", name, quoted(s))
	}
	return t.Unix(), nil
}

// unixSeconds reads the time of the first of names that obj has, given as
// Unix seconds, as a numeric string of them, or as RFC 3339 text. A value
// beyond any plausible Unix time in seconds is taken as milliseconds. For
// fields whose form the docs leave open: what it cannot read is 0, and
// stays in the payload.
func unixSeconds(obj map[string]any, names ...string) int64 {
	for _, name := range names {
		v, ok := obj[name]
		if !ok || v == nil {
			continue
		}
		if s, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339, s); err == nil {
				return t.Unix()
			}
		}
		f, err := number(v)
		if err != nil || f < 0 || f >= math.MaxInt64 {
			return 0
		}
		if f >= 1e11 { // later than the year 5138 in seconds: milliseconds
			f /= 1000
		}
		return int64(f)
	}
	return 0
}

// verdict is a moderation result: the most severe suggestion found in a
// callback (block, then review, then pass) with its label, scene and rate.
type verdict struct {
	suggestion, label, scene string
	rate                     float64
	rank                     int
}

var suggestionRank = map[string]int{"pass": 1, "review": 2, "block": 3}

// beats orders verdicts by severity, then rate, then label and scene, so
// the one kept does not depend on the order of a map's keys.
func (c verdict) beats(b verdict) bool {
	switch {
	case c.rank != b.rank:
		return c.rank > b.rank
	case c.rate != b.rate:
		return c.rate > b.rate
	case c.label != b.label:
		return c.label < b.label
	}
	return c.scene < b.scene
}

// strongest walks v for objects that carry a suggestion (Suggestion) and
// keeps in best the most severe, the highest rate among equals. Results
// nest differently in the video and audio callbacks, and depth is bounded
// by checkShape.
func strongest(v any, best *verdict) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			strongest(e, best)
		}
	case map[string]any:
		if s := bestText(x, "suggestion", "Suggestion"); s != "" {
			c := verdict{
				suggestion: strings.ToLower(s),
				label:      bestText(x, "label", "Label"),
				scene:      bestText(x, "scene", "Scene"),
			}
			c.rank = suggestionRank[c.suggestion]
			for _, name := range []string{"rate", "Rate"} {
				if f, err := number(x[name]); err == nil {
					c.rate = f
					break
				}
			}
			if best.suggestion == "" || c.beats(*best) {
				*best = c
			}
		}
		for _, e := range x {
			strongest(e, best)
		}
	}
}
