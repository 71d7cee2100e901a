package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

// Playground is the engine API the playground uses: it runs conditions
// and plans deliveries, and never sends or records anything.
type Playground interface {
	TryCondition(src string, ev *event.Event) rules.Tried
	TryRule(name string, ev *event.Event) (engine.RuleTrial, error)
	// SampleSources and DecodeSample take a callback pasted as its
	// sender sends it.
	SampleSources() []string
	DecodeSample(source string, body []byte) (*event.Event, error)
}

// Bounds of what the playground takes.
const (
	maxPlayCondition = 16 << 10
	maxPlayEvent     = 256 << 10
)

type playPage struct {
	When, Event, ID, Rule string
	As                    string   // the source the pasted text is a callback of; "" for an event as rules see it
	Sources               []string // to choose As from
	Rules                 []string // the loaded rules with steps, to choose from
	Problem               string   // the event could not be had
	Loaded                string   // the stored event just put in the box
	Sample                *event.Event
	Tried                 *rules.Tried // the condition typed, on the event
	Trial                 *engine.RuleTrial
	Lines                 []string // the condition's lines, to point at a problem
}

func (c *console) playground(w http.ResponseWriter, r *http.Request) {
	if c.o.Playground == nil {
		c.fail(w, http.StatusNotFound, errors.New("this daemon has no playground"))
		return
	}
	q := r.URL.Query()
	p := playPage{When: q.Get("when"), Event: q.Get("event"), ID: strings.TrimSpace(q.Get("id")), Rule: q.Get("rule"), As: q.Get("as"),
		Sources: c.o.Playground.SampleSources()}
	if c.o.Rules != nil {
		for _, rr := range c.o.Rules().Rules {
			if len(rr.Steps) > 0 {
				p.Rules = append(p.Rules, rr.Name)
			}
		}
	}
	if len(p.When) > maxPlayCondition || len(p.Event) > maxPlayEvent {
		c.fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("the playground takes a condition up to %d KiB and an event up to %d KiB", maxPlayCondition>>10, maxPlayEvent>>10))
		return
	}
	ev, err := c.sample(p.ID, p.As, p.Event)
	switch {
	case errors.Is(err, errNoSample):
		if p.When != "" || p.Rule != "" {
			p.Problem = err.Error()
		}
	case err != nil:
		p.Problem = err.Error()
	default:
		p.Sample = ev
		if p.ID != "" {
			// The stored event goes into the box for editing; the next try
			// reads the box.
			p.Event, p.Loaded, p.ID, p.As = indentJSON(ev), p.ID, "", ""
		}
		if p.When != "" {
			t := c.o.Playground.TryCondition(p.When, ev)
			p.Tried, p.Lines = &t, strings.Split(p.When, "\n")
		}
		if p.Rule != "" {
			t, err := c.o.Playground.TryRule(p.Rule, ev)
			if err != nil {
				p.Problem = err.Error()
			} else {
				p.Trial = &t
			}
		}
	}
	c.render(w, http.StatusOK, "playground", "Playground", p)
}

// playFuncs are the playground's template functions.
var playFuncs = template.FuncMap{
	// tried pairs a condition's outcome with the line of its problem,
	// marked under the column.
	"tried": func(t rules.Tried, lines []string) triedView {
		v := triedView{Tried: t}
		if p := t.Problem; p != nil && p.Line > 0 && p.Line <= len(lines) {
			v.Line = lines[p.Line-1] + "\n" + strings.Repeat(" ", max(p.Col-1, 0)) + "^"
		}
		return v
	},
	"json": func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	},
	// body shows a string as is and anything else as indented JSON.
	"body": func(v any) string {
		if s, ok := v.(string); ok {
			return s
		}
		return indentJSON(v)
	},
}

type triedView struct {
	Tried rules.Tried
	Line  string
}

var errNoSample = errors.New("give a sample event: paste its JSON, or the id of a stored event")

// sample is the event to try: a stored one by id, a callback pasted as the
// source as sends it, or pasted JSON in the form rules see (an event
// page's fields).
func (c *console) sample(id, as, pasted string) (*event.Event, error) {
	if id != "" {
		if c.o.Events == nil {
			return nil, errors.New("this daemon keeps no event history: paste the event instead")
		}
		d, err := c.o.Events.Event(id)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", id, err)
		}
		return d.Event, nil
	}
	if strings.TrimSpace(pasted) == "" {
		return nil, errNoSample
	}
	if as != "" {
		return c.o.Playground.DecodeSample(as, []byte(pasted))
	}
	dec := json.NewDecoder(strings.NewReader(pasted))
	dec.DisallowUnknownFields()
	var ev event.Event
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("the event is not an event's JSON as rules see it (copy it from an event page): %s", jsonProblem(pasted, err))
	}
	if dec.More() {
		return nil, errors.New("the event: one JSON object, please; more follows it")
	}
	return &ev, nil
}

// jsonProblem says where JSON went wrong, by line and column.
func jsonProblem(src string, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset - 1 // the offset is after the character that is wrong
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(src)) {
		return err.Error()
	}
	before := src[:off]
	line := strings.Count(before, "\n") + 1
	col := len(before) - strings.LastIndex(before, "\n")
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

func indentJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return b.String()
}
