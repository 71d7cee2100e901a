// Package source is the contract between livehook and the kinds of
// callback it takes. Intake mounts each kind's route, and `livehook test`
// and `send` read event files through it. This package knows no concrete
// source: each lives under sources/ and registers itself with Register
// from init, as action types do.
package sourceapi

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/event"
)

// Source describes one kind of callback.
type Source struct {
	// Name is the source its events carry (event.Source), the key of its
	// `sources:` entry in the rules, and a metric label. A source whose
	// Path ends in {source} is a family: every name under its prefix is a
	// source of its own, and Name only tells the descriptor apart.
	Name string
	// Doc says what its callbacks are, in a few words that fit in a
	// sentence: "recording callbacks".
	Doc string
	// Path is where intake mounts it: an exact path, or a prefix followed
	// by {source} for a family.
	Path string
	// Methods it is called with; the first is the one `livehook send` uses.
	Methods []string
	// Decode turns one request into its event. A refusal should be an
	// *event.DecodeError, whose Reason labels the metric.
	Decode func(r *Request) (*event.Event, error)
	// Identity is what stays the same across the sender's retries of one
	// callback; "" when they cannot be told apart. nil: never deduplicated.
	Identity func(r *Request, ev *event.Event) string
	// Window is how long an event's identity is remembered, from the
	// daemon's configured windows. nil: w.File.
	Window func(ev *event.Event, w Windows) time.Duration
	// Auth names the credential its sender gives when configured to, as
	// auth.Verifier.Method names it (aliyun_signature); "" if none is
	// expected. `serve` warns when such a source is open without it.
	Auth string
	// Label is its value of bounded metric labels (duplicates by source).
	// Default Name; a family needs one, as callers name its sources.
	Label string
	// Reply is the body of the 200 answer to an accepted event, whose id
	// is id. nil: Accepted, {"id":id,"ok":true}.
	Reply func(ev *event.Event, id string) any
	// Fixture turns an event file, as `livehook test` and `send` take it,
	// into the request its sender would make. nil: the file is the body,
	// sent as JSON.
	Fixture func(name string, file []byte) (*Request, error)
}

// Request is what a decoder reads of one callback.
type Request struct {
	Name   string // the source: the descriptor's Name, or the one the path gave a family
	Header http.Header
	Query  url.Values // nil when the URL has none
	Body   []byte
}

// Windows are the dedupe windows the daemon is configured with.
type Windows struct {
	File   time.Duration // what happens once, such as a recording file being generated
	Status time.Duration // status events, which can genuinely repeat
}

// familyMark ends the Path of a family.
const familyMark = "{source}"

// Family reports whether the path names the source.
func (s *Source) Family() bool { return strings.HasSuffix(s.Path, familyMark) }

// PathFor is the path that callbacks from the source name are sent to.
func (s *Source) PathFor(name string) string {
	if prefix, ok := strings.CutSuffix(s.Path, familyMark); ok {
		return prefix + name
	}
	return s.Path
}

// Allows reports whether the source is called with method.
func (s *Source) Allows(method string) bool { return slices.Contains(s.Methods, method) }

// DedupeKey is the identity of ev, decoded from r; "" means ev is not
// deduplicated.
func (s *Source) DedupeKey(r *Request, ev *event.Event) string {
	if s.Identity == nil {
		return ""
	}
	return s.Identity(r, ev)
}

// DedupeWindow is how long the identity of ev is remembered.
func (s *Source) DedupeWindow(ev *event.Event, w Windows) time.Duration {
	if s.Window == nil {
		return w.File
	}
	return s.Window(ev, w)
}

// MetricLabel is the source's value of bounded metric labels.
func (s *Source) MetricLabel() string {
	if s.Label == "" {
		return s.Name
	}
	return s.Label
}

// Answer is the body of the 200 answer to ev, accepted as id.
func (s *Source) Answer(ev *event.Event, id string) any {
	if s.Reply == nil {
		return Accepted{ID: id, OK: true}
	}
	return s.Reply(ev, id)
}

// Accepted is the answer to an accepted event of a source without a
// Reply. Intake writes it on every accept, so it is a struct, which
// encodes cheaper than a map.
type Accepted struct {
	ID string `json:"id"`
	OK bool   `json:"ok"` // always true
}

// FromFile is the request that sends the event file as source name.
func (s *Source) FromFile(name string, file []byte) (*Request, error) {
	if s.Fixture == nil {
		return &Request{Name: name, Header: http.Header{"Content-Type": {"application/json"}}, Body: file}, nil
	}
	return s.Fixture(name, file)
}

// DecodeFile decodes the event file as intake would the callback FromFile
// makes of it: the event `livehook test` and the console's playground see.
func (s *Source) DecodeFile(name string, file []byte) (*event.Event, error) {
	req, err := s.FromFile(name, file)
	if err != nil {
		return nil, err
	}
	return s.Decode(req)
}

// Key joins the parts of an identity so that they cannot run into each
// other.
func Key(parts ...string) string { return strings.Join(parts, "\x00") }

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidName reports whether name can be a source: 1-64 letters, digits,
// '_', '.' or '-', starting with a letter or digit. Source names become
// URL paths and metric labels, so they are kept plain.
func ValidName(name string) bool { return validName.MatchString(name) }
