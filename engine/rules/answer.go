package rules

import (
	"maps"
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/yamlconf"
)

// On-demand recording: ApsaraVideo Live asks, with a GET, whether to record
// a stream, and waits for the answer. Rules with `answer:` decide it when
// the callback is accepted, before the reply: the first enabled one whose
// condition holds, else the `default_answer:` of the source's `sources:`
// entry, else "do not record" (what Live does without an OnDemandUrl).
// Only the on-demand source's events consult them.

// answerFormats are the formats an answer may name, as Live takes them.
var answerFormats = []string{"mp4", "flv", "m3u8"}

// The recording cycle an answer may set, in seconds, as Live takes it.
const (
	minInterval = 5
	maxInterval = 21600
)

// Answer decides the answer to ev. asks is false for an event of any
// source but on-demand recording, which no answer rule sees. A condition
// that fails at run time ends the search: the default answers (a later
// rule might contradict the one that failed), and err says why.
func (s *Set) Answer(ev *event.Event) (a event.Answer, asks bool, err *EvalError) {
	if ev.Source != event.SourceOnDemand {
		return event.Answer{}, false, nil
	}
	var env any = *ev
	for _, r := range s.answers {
		if !r.Enabled {
			continue
		}
		if r.program != nil {
			// vm.Run takes a VM of its own: answers are decided on the
			// request path, by any number of requests at once.
			out, runErr := vm.Run(r.program, env)
			if runErr != nil {
				err = &EvalError{Rule: r, Err: runErr}
				a = s.defaultAnswer(ev.Source)
				a.Error = s.Secrets.Redact(err.Error())
				return a, true, err
			}
			if ok, _ := out.(bool); !ok {
				continue
			}
		}
		a = cloneAnswer(r.Answer)
		a.Rule = r.Name
		return a, true, nil
	}
	return s.defaultAnswer(ev.Source), true, nil
}

// defaultAnswer is the default_answer of the entry of source, else "do not
// record".
func (s *Set) defaultAnswer(source string) event.Answer {
	a := event.Answer{}
	for _, src := range s.Sources {
		if src.Name == source && src.DefaultAnswer != nil {
			a = cloneAnswer(src.DefaultAnswer)
		}
	}
	a.Default = true
	return a
}

// cloneAnswer copies a rule's answer for an event, which outlives the set.
func cloneAnswer(a *event.Answer) event.Answer {
	c := *a
	c.Formats, c.Interval = slices.Clone(a.Formats), maps.Clone(a.Interval)
	return c
}

type answerYAML struct {
	NeedRecord *bool       `yaml:"need_record"`
	Formats    []yaml.Node `yaml:"formats"`
	Interval   yaml.Node   `yaml:"interval"`
}

// answer decodes an `answer:` or `default_answer:` mapping, reporting
// problems as what (`rule "r": answer`); nil if it is broken.
func (l *loader) answer(file, what string, n *yaml.Node) *event.Answer {
	var ay answerYAML
	if err := yamlconf.Decode(file, n, &ay); err != nil {
		l.addErr(file, n, err)
		return nil
	}
	if n.Kind != yaml.MappingNode || ay.NeedRecord == nil {
		l.diags.At(file, n, "%s: need_record is required: true records the stream, false does not", what)
		return nil
	}
	a := &event.Answer{NeedRecord: *ay.NeedRecord}
	ok := true
	if !a.NeedRecord && (ay.Formats != nil || ay.Interval.Kind != 0) {
		l.diags.At(file, n, "%s: formats and interval apply only when need_record is true", what)
		return nil
	}
	if ay.Formats != nil && len(ay.Formats) == 0 {
		// Live records the formats an answer names that it is configured
		// with: none would mean no recording, which need_record says.
		l.diags.At(file, n, "%s: formats: want at least one of %s, or leave it out for the configured formats",
			what, strings.Join(answerFormats, ", "))
		ok = false
	}
	for i := range ay.Formats {
		f := &ay.Formats[i]
		name, known := answerFormat(f)
		switch {
		case !known:
			l.diags.At(file, f, "%s: formats: unknown format %q (want %s)", what, f.Value, strings.Join(answerFormats, ", "))
			ok = false
		case slices.Contains(a.Formats, name):
			l.diags.At(file, f, "%s: formats: %s is given twice", what, name)
			ok = false
		default:
			a.Formats = append(a.Formats, name)
		}
	}
	if ay.Interval.Kind != 0 {
		a.Interval = l.interval(file, what, &ay.Interval, a.Formats, ay.Formats != nil)
		ok = ok && a.Interval != nil
	}
	if !ok {
		return nil
	}
	return a
}

// interval decodes an answer's recording cycles, format: seconds; nil if
// any is wrong. With formats named, only those may be given a cycle.
func (l *loader) interval(file, what string, n *yaml.Node, formats []string, named bool) map[string]int64 {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		l.diags.At(file, n, "%s: interval: want a mapping of formats to seconds, e.g. {mp4: 1800}", what)
		return nil
	}
	out := map[string]int64{}
	ok := true
	yamlconf.ForEachKey(file, n, &l.diags, func(k, v *yaml.Node) {
		name, known := answerFormat(k)
		var secs int64
		switch {
		case !known:
			l.diags.At(file, k, "%s: interval: unknown format %q (want %s)", what, k.Value, strings.Join(answerFormats, ", "))
		case named && !slices.Contains(formats, name):
			l.diags.At(file, k, "%s: interval: %s is not among the answer's formats", what, name)
		case out[name] != 0:
			l.diags.At(file, k, "%s: interval: %s is given twice", what, name)
		case v.Kind != yaml.ScalarNode || v.Decode(&secs) != nil || secs < minInterval || secs > maxInterval:
			l.diags.At(file, v, "%s: interval: %s: want whole seconds from %d to %d", what, name, minInterval, maxInterval)
		default:
			out[name] = secs
			return
		}
		ok = false
	})
	if !ok {
		return nil
	}
	return out
}

// answerFormat is the format a node names, in lower case, and whether
// Live takes it.
func answerFormat(n *yaml.Node) (string, bool) {
	name := strings.ToLower(n.Value)
	return name, n.Kind == yaml.ScalarNode && slices.Contains(answerFormats, name)
}
