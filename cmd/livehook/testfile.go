package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/auth"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/sourceapi"
	"github.com/livehook/livehook/engine/yamlconf"
)

// A rule test file: a timeline of callbacks on a virtual clock and the
// firings it must produce, read with every problem's file:line:col like a
// rules file.

// defaultTestStart is where a test's clock starts when its file names no
// start.
var defaultTestStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// maxTimeline bounds a test's timeline, its repeats expanded: a day of
// callbacks at more than one a second.
const maxTimeline = 100_000

// ruleTestFile is one parsed test file.
type ruleTestFile struct {
	path    string
	rules   string // the file's rules:, resolved against its folder; "" if none
	rulesAt *yaml.Node
	start   time.Time
	zone    *time.Location
	tests   []*ruleTest
}

// ruleTest is one test: its timeline, expanded and in time order, and
// what must fire.
type ruleTest struct {
	name   string
	line   int
	until  time.Duration // the clock's end: the last item's time unless until: says later
	items  []*timelineItem
	expect []*expectation
	ids    map[string]*timelineItem
}

// timelineItem is one step of a timeline: a callback, or a restart.
type timelineItem struct {
	at      time.Duration
	line    int
	id      string
	restart bool
	down    time.Duration // of a restart
	// A callback as its source's sender makes it.
	source  *sourceapi.Source
	name    string // the source's name
	req     *sourceapi.Request
	retryOf *timelineItem
	made    *madeUpFile // the fields of a file callback the item left to its time
	node    *yaml.Node  // the callback's fields as written
	atNode  *yaml.Node
}

// label names an item in reports: its id, or its line.
func (it *timelineItem) label() string {
	if it.id != "" {
		return it.id
	}
	return fmt.Sprintf("line %d", it.line)
}

// expectation is one firing a test expects.
type expectation struct {
	line      int
	rule      string
	at        time.Duration // or, with between, the earliest
	to        time.Duration // the latest; equal to at without between
	between   bool
	key       map[string]string
	keyOrder  []string
	count     *int
	late      *bool
	causedBy  []string
	sends     map[string]string // action → text the delivery must contain
	sendOrder []string
	nodes     expectNodes
}

// expectNodes keep where an expectation's parts are written, for the
// checks that need the rules.
type expectNodes struct {
	rule, count, keys, sends, when *yaml.Node
	keyNodes, sendNodes            map[string]*yaml.Node
}

// isTestFile reports whether path is a rule test file: YAML whose top
// level has tests:.
func isTestFile(path string) bool {
	if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
		return false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "tests" {
			return true
		}
	}
	return false
}

// testFilesIn lists the *.test.yaml files of dir, in name order; none if
// it holds none (then it is no folder of tests).
func testFilesIn(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".test.yaml") || strings.HasSuffix(n, ".test.yml")) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

var (
	testFileKeys    = []string{"rules", "start", "tz", "defaults", "source", "tests"}
	testKeys        = []string{"name", "until", "timeline", "expect"}
	itemKeys        = []string{"at", "id", "event", "file", "set", "retry_of", "repeat", "restart", "source"}
	expectationKeys = []string{"rule", "at", "between", "key", "count", "late", "caused_by", "sends"}
)

// testParser reads one test file.
type testParser struct {
	file    string
	diags   yamlconf.List
	sources *sourceapi.Registry
	start   time.Time
	zone    *time.Location // the clock shown in uri of made-up file callbacks
	deflt   map[string]any
	source  string
}

// parseTestFile reads a test file; the error carries every problem.
func parseTestFile(path string, sources *sourceapi.Registry) (*ruleTestFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseTest(path, data, sources)
}

// parseTest reads a test file's contents; path names it, and files it
// refers to are found beside it.
func parseTest(path string, data []byte, sources *sourceapi.Registry) (*ruleTestFile, error) {
	p := &testParser{file: path, sources: sources, start: defaultTestStart, source: event.SourceRecord}
	f := &ruleTestFile{path: path, start: defaultTestStart}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.diags.AddErr(path, nil, err)
		return nil, p.diags.Err()
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		p.diags.At(path, &doc, "want a mapping with tests:")
		return nil, p.diags.Err()
	}
	root := doc.Content[0]
	var tests, start, tz, defaults *yaml.Node
	yamlconf.ForEachKey(path, root, &p.diags, func(k, v *yaml.Node) {
		switch k.Value {
		case "rules":
			f.rulesAt = v
			f.rules = p.rulesPath(v)
		case "start":
			start = v
		case "tz":
			tz = v
		case "defaults":
			defaults = v
		case "source":
			p.source = p.sourceName(v)
		case "tests":
			tests = v
		default:
			p.unknown(k, testFileKeys)
		}
	})
	if start != nil {
		t, err := time.Parse(time.RFC3339, start.Value)
		if start.Kind != yaml.ScalarNode || err != nil {
			p.diags.At(path, start, "start: want a time such as 2026-11-27T10:00:00+08:00 (RFC 3339)")
		} else {
			p.start = t
		}
	}
	p.zone = p.start.Location()
	if tz != nil {
		loc, err := time.LoadLocation(tz.Value)
		if tz.Kind != yaml.ScalarNode || err != nil || tz.Value == "" {
			p.diags.At(path, tz, "tz: want a time zone name such as Asia/Shanghai")
		} else {
			p.zone = loc
		}
	}
	f.start, f.zone = p.start, p.zone
	if defaults != nil {
		p.deflt = p.object(defaults, "defaults")
	}
	switch {
	case tests == nil:
		p.diags.At(path, root, "tests: want a list of tests")
	case tests.Kind != yaml.SequenceNode:
		p.diags.At(path, tests, "tests: want a list of tests")
	default:
		for _, tn := range tests.Content {
			if t := p.test(tn); t != nil {
				f.tests = append(f.tests, t)
			}
		}
	}
	if err := p.diags.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *testParser) unknown(k *yaml.Node, want []string) {
	p.diags.At(p.file, k, "unknown key %q (want one of %s)", k.Value, strings.Join(want, ", "))
}

// rulesPath reads rules: one rules file or folder, as serve's --rules
// takes, relative to the test file.
func (p *testParser) rulesPath(n *yaml.Node) string {
	v := n
	if n.Kind == yaml.SequenceNode && len(n.Content) == 1 {
		v = n.Content[0]
	}
	if v.Kind != yaml.ScalarNode || v.Value == "" {
		p.diags.At(p.file, n, "rules: want one rules file or folder (as serve's --rules takes), relative to this file")
		return ""
	}
	if filepath.IsAbs(v.Value) {
		return v.Value
	}
	return filepath.Join(filepath.Dir(p.file), v.Value)
}

func (p *testParser) sourceName(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		if _, ok := p.sources.Lookup(n.Value); ok {
			return n.Value
		}
	}
	p.diags.At(p.file, n, "source: %q is not a source name: %s", n.Value, sourceNames())
	return ""
}

// object reads a mapping of callback fields, as JSON would carry them.
func (p *testParser) object(n *yaml.Node, what string) map[string]any {
	if n.Kind != yaml.MappingNode {
		p.diags.At(p.file, n, "%s: want a mapping of callback fields", what)
		return nil
	}
	bad := false
	yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			p.diags.At(p.file, k, "%s: want field names", what)
			bad = true
		}
	})
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		p.diags.AddErr(p.file, n, err)
		return nil
	}
	if bad {
		return nil
	}
	if _, err := json.Marshal(m); err != nil {
		p.diags.At(p.file, n, "%s: not something a JSON callback can carry: %v", what, err)
		return nil
	}
	return m
}

// offset reads an offset from the test's start: 0s, 90s, 1h30m.
func (p *testParser) offset(n *yaml.Node, what string) (time.Duration, bool) {
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || d < 0 {
		p.diags.At(p.file, n, "%s: %q is not an offset from the start such as 0s, 90s or 1h30m", what, n.Value)
		return 0, false
	}
	return d, true
}

// duration reads a positive length of time.
func (p *testParser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	d, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || d < 0 {
		p.diags.At(p.file, n, "%s: %q is not a duration such as 30s, 10m or 1h", what, n.Value)
		return 0, false
	}
	return d, true
}

func (p *testParser) test(n *yaml.Node) *ruleTest {
	if n.Kind != yaml.MappingNode {
		p.diags.At(p.file, n, "a test: want a mapping with name, timeline and expect")
		return nil
	}
	t := &ruleTest{line: n.Line, ids: map[string]*timelineItem{}}
	var timeline, expect, until *yaml.Node
	yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.diags.At(p.file, v, "name: want the test's name")
			}
			t.name = v.Value
		case "until":
			until = v
		case "timeline":
			timeline = v
		case "expect":
			expect = v
		default:
			p.unknown(k, testKeys)
		}
	})
	if t.name == "" {
		t.name = fmt.Sprintf("line %d", n.Line)
	}
	if timeline == nil || timeline.Kind != yaml.SequenceNode {
		p.diags.At(p.file, cmpNode(timeline, n), "test %q: timeline: want a list of events, files, retries and restarts", t.name)
	} else {
		var retries []*yaml.Node // checked once every id is known
		for _, in := range timeline.Content {
			items, retry := p.item(t, in)
			if len(t.items)+len(items) > maxTimeline {
				p.diags.At(p.file, in, "timeline: more than %d steps", maxTimeline)
				break
			}
			t.items = append(t.items, items...)
			if retry != nil {
				retries = append(retries, retry)
			}
		}
		for _, r := range retries {
			if _, ok := t.ids[r.Value]; !ok {
				p.diags.At(p.file, r, "retry_of: no item of this timeline has id %q", r.Value)
			}
		}
		for _, it := range t.items {
			if it.retryOf != nil && it.req == nil {
				p.retry(t, it, 0)
			}
		}
	}
	// Items run in time order; those at one time in the order written.
	slices.SortStableFunc(t.items, func(a, b *timelineItem) int { return int(a.at - b.at) })
	var down *timelineItem // the restart whose downtime the timeline is in
	for _, it := range t.items {
		switch {
		case down != nil && it.at < down.at+down.down && !it.restart:
			p.diags.At(p.file, it.atNode, "at %s livehook is down (restart at line %d, down until %s): a callback sent then is lost, as Aliyun retries for seconds only",
				fmtOffset(it.at), down.line, fmtOffset(down.at+down.down))
		case it.restart:
			down = it
		}
	}
	for _, it := range t.items {
		t.until = max(t.until, it.at)
	}
	if until != nil {
		if d, ok := p.offset(until, "until"); ok {
			if d < t.until {
				p.diags.At(p.file, until, "until: %s is before the timeline's last item at %s", fmtOffset(d), fmtOffset(t.until))
			}
			t.until = max(t.until, d)
		}
	}
	switch {
	case expect == nil:
		p.diags.At(p.file, n, "test %q: expect: want the firings the timeline makes, or [] for none", t.name)
	case expect.Kind != yaml.SequenceNode:
		p.diags.At(p.file, expect, "test %q: expect: want a list of firings, or [] for none", t.name)
	default:
		for _, en := range expect.Content {
			if e := p.expectation(t, en); e != nil {
				t.expect = append(t.expect, e)
			}
		}
	}
	return t
}

func cmpNode(n, or *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return or
}

// item reads one timeline item, expanded by its repeat; the retry_of node,
// if any, to be checked once every id is known.
func (p *testParser) item(t *ruleTest, n *yaml.Node) ([]*timelineItem, *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.diags.At(p.file, n, "a timeline item: want a mapping with at and one of event, file, retry_of, restart")
		return nil, nil
	}
	it := &timelineItem{line: n.Line, name: p.source}
	var kinds []string
	var ev, file, set, retry, repeat, restart, atNode, idNode *yaml.Node
	yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
		switch k.Value {
		case "at":
			atNode = v
		case "id":
			idNode = v
		case "event":
			ev, kinds = v, append(kinds, k.Value)
		case "file":
			file, kinds = v, append(kinds, k.Value)
		case "retry_of":
			retry, kinds = v, append(kinds, k.Value)
		case "restart":
			restart, kinds = v, append(kinds, k.Value)
		case "set":
			set = v
		case "repeat":
			repeat = v
		case "source":
			it.name = p.sourceName(v)
		default:
			p.unknown(k, itemKeys)
		}
	})
	if atNode == nil {
		p.diags.At(p.file, n, "a timeline item: at: is required (an offset from the start such as 0s or 10m)")
		atNode = n
	} else {
		it.at, _ = p.offset(atNode, "at")
	}
	it.atNode = atNode
	if len(kinds) != 1 {
		p.diags.At(p.file, n, "a timeline item: want exactly one of event, file, retry_of and restart")
		return nil, nil
	}
	if set != nil && file == nil {
		p.diags.At(p.file, set, "set: only for a file: item (an event: item says its fields itself)")
	}
	if idNode != nil {
		switch {
		case idNode.Kind != yaml.ScalarNode || idNode.Value == "":
			p.diags.At(p.file, idNode, "id: want a name for this item")
		case restart != nil:
			p.diags.At(p.file, idNode, "id: a restart sends nothing to name")
		case repeat != nil:
			p.diags.At(p.file, idNode, "id: names one callback, and repeat sends several")
		case t.ids[idNode.Value] != nil:
			p.diags.At(p.file, idNode, "id %q is already used at line %d", idNode.Value, t.ids[idNode.Value].line)
		default:
			it.id = idNode.Value
			t.ids[it.id] = it
		}
	}
	src, ok := p.sources.Lookup(it.name)
	if it.name == "" || !ok {
		return nil, nil
	}
	it.source = src
	switch {
	case restart != nil:
		it.node = restart
		if repeat != nil {
			p.diags.At(p.file, repeat, "repeat: a restart happens once")
		}
		it.restart = true
		p.restart(it, restart)
		return []*timelineItem{it}, nil
	case retry != nil:
		if retry.Kind != yaml.ScalarNode {
			p.diags.At(p.file, retry, "retry_of: want the id of an earlier item")
			return nil, nil
		}
		it.node, it.retryOf = retry, &timelineItem{id: retry.Value} // resolved once every id is known
	case ev != nil:
		it.node, it.req = ev, p.eventRequest(it, ev)
	case file != nil:
		it.node, it.req = file, p.fileRequest(it, file, set)
	}
	if it.req == nil && it.retryOf == nil {
		return nil, nil
	}
	items := []*timelineItem{it}
	if repeat != nil {
		items = p.repeat(it, repeat)
	}
	return items, retry
}

// restart reads restart: true or {down_for: 40m}.
func (p *testParser) restart(it *timelineItem, n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Value == "true" {
		return
	}
	if n.Kind == yaml.MappingNode {
		yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
			if k.Value != "down_for" {
				p.unknown(k, []string{"down_for"})
				return
			}
			it.down, _ = p.duration(v, "restart: down_for")
		})
		return
	}
	p.diags.At(p.file, n, "restart: want true, or {down_for: 40m}")
}

// repeat expands an item as promtool's series notation does: count
// copies, every apart, from at. Each copy of a callback is a callback of
// its own, at its own time.
func (p *testParser) repeat(it *timelineItem, n *yaml.Node) []*timelineItem {
	var count int
	var every time.Duration
	okCount, okEvery := false, false
	if n.Kind != yaml.MappingNode {
		p.diags.At(p.file, n, "repeat: want {count: 3, every: 1m}")
		return nil
	}
	yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
		switch k.Value {
		case "count":
			c, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || c < 1 || c > maxTimeline {
				p.diags.At(p.file, v, "repeat: count: want a whole number from 1 to %d", maxTimeline)
				return
			}
			count, okCount = c, true
		case "every":
			every, okEvery = p.duration(v, "repeat: every")
		default:
			p.unknown(k, []string{"count", "every"})
		}
	})
	if !okCount || !okEvery {
		if !okCount {
			p.diags.At(p.file, n, "repeat: count is required")
		}
		if !okEvery {
			p.diags.At(p.file, n, "repeat: every is required")
		}
		return nil
	}
	out := make([]*timelineItem, count)
	for i := range out {
		c := *it
		c.at = it.at + time.Duration(i)*every
		switch {
		case c.retryOf != nil:
		case it.made != nil: // a file of its own, at its own time
			if c.req = p.request(&c, it.node, p.fileFields(it.made, c.at), nil); c.req == nil {
				return nil
			}
		default:
			c.req = p.stamp(it.req, c.at)
		}
		out[i] = &c
	}
	return out
}

// madeUpFile is a file callback's fields as an event: item gives them,
// whose times and uri come from its time, for each copy of a repeat anew.
type madeUpFile struct {
	fields map[string]any
	format string
}

// eventRequest builds the callback of an event: item, merged over the
// file's defaults.
func (p *testParser) eventRequest(it *timelineItem, n *yaml.Node) *sourceapi.Request {
	fields := p.object(n, "event")
	if fields == nil && n.Kind != yaml.MappingNode {
		return nil
	}
	obj := map[string]any{}
	for k, v := range p.deflt {
		obj[k] = v
	}
	for k, v := range fields {
		obj[k] = v
	}
	if it.source.Name == event.SourceRecord {
		if format, ok := obj["format"]; ok {
			if _, hasURI := obj["uri"]; hasURI {
				p.diags.At(p.file, n, "event: format: give it only without uri (a file's format is its uri's extension)")
				return nil
			}
			delete(obj, "format")
			it.made = &madeUpFile{fields: obj, format: fmt.Sprint(format)}
		} else if _, isStatus := obj["event"]; !isStatus && (obj["uri"] != nil || obj["duration"] != nil) {
			it.made = &madeUpFile{fields: obj, format: "flv"}
		}
		if it.made != nil {
			obj = p.fileFields(it.made, it.at)
		}
	}
	return p.request(it, n, obj, nil)
}

// fileFields fills in what Aliyun always sends with a file callback and
// an event: item left out, from the item's time: stop_time is its time,
// start_time that less the duration, uri
// app/stream/0_start_stop.format as Aliyun names recordings (UTC+8).
func (p *testParser) fileFields(m *madeUpFile, at time.Duration) map[string]any {
	obj := make(map[string]any, len(m.fields)+3)
	for k, v := range m.fields {
		obj[k] = v
	}
	stop := p.start.Add(at)
	if _, ok := obj["stop_time"]; !ok {
		obj["stop_time"] = stop.Unix()
	}
	if _, ok := obj["start_time"]; !ok {
		d, _ := obj["duration"].(float64)
		if i, ok := obj["duration"].(int); ok {
			d = float64(i)
		}
		obj["start_time"] = stop.Add(-time.Duration(math.Round(d)) * time.Second).Unix()
	}
	if _, ok := obj["uri"]; !ok {
		cst := time.FixedZone("UTC+8", 8*3600)
		unix := func(k string) time.Time {
			switch v := obj[k].(type) {
			case int64:
				return time.Unix(v, 0)
			case int:
				return time.Unix(int64(v), 0)
			case float64:
				return time.Unix(int64(v), 0)
			}
			return stop
		}
		const layout = "2006-01-02-15:04:05"
		obj["uri"] = fmt.Sprintf("%v/%v/0_%s_%s.%s", obj["app"], obj["stream"],
			unix("start_time").In(cst).Format(layout), unix("stop_time").In(cst).Format(layout), m.format)
	}
	return obj
}

// fileRequest builds the callback of a file: item: the fixture, with the
// defaults over the fields it has (a fixture gives the callback's shape,
// the defaults the stream it is about), then set: over everything.
func (p *testParser) fileRequest(it *timelineItem, n, set *yaml.Node) *sourceapi.Request {
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		p.diags.At(p.file, n, "file: want the path of a JSON callback, relative to this file")
		return nil
	}
	path := n.Value
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.file), path)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		p.diags.At(p.file, n, "file: %v", err)
		return nil
	}
	var over map[string]any
	if set != nil {
		if over = p.object(set, "set"); over == nil {
			return nil
		}
	}
	applies := len(over) > 0
	if !applies {
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) == nil {
			for k := range p.deflt {
				_, has := obj[k]
				applies = applies || has
			}
		}
	}
	if !applies {
		return p.request(it, n, nil, body) // sent as it is, byte for byte
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		p.diags.At(p.file, n, "file: %s: want a JSON object to apply defaults and set: to: %v", n.Value, err)
		return nil
	}
	for k, v := range p.deflt {
		if _, has := obj[k]; has {
			obj[k] = v
		}
	}
	for k, v := range over {
		obj[k] = v
	}
	return p.request(it, n, obj, nil)
}

// request builds the callback of obj (or of body as it is) as its
// source's sender would send it at the item's time, and checks that the
// source takes it.
func (p *testParser) request(it *timelineItem, at *yaml.Node, obj map[string]any, body []byte) *sourceapi.Request {
	if obj != nil {
		var err error
		if body, err = json.Marshal(obj); err != nil {
			p.diags.At(p.file, at, "not something a JSON callback can carry: %v", err)
			return nil
		}
	}
	req, err := it.source.FromFile(it.name, body)
	if err == nil {
		_, err = it.source.Decode(p.stamp(req, it.at))
	}
	if err != nil {
		p.diags.At(p.file, at, "%s would refuse this callback: %v", it.name, err)
		return nil
	}
	return p.stamp(req, it.at)
}

// stamp is req as sent at offset at: with ALI-LIVE-TIMESTAMP, as Aliyun
// sends a callback when signing is configured (the production setup),
// which is part of a status callback's identity: two callbacks with the
// same body at different seconds are two, and a retry is the same bytes
// and header again.
func (p *testParser) stamp(req *sourceapi.Request, at time.Duration) *sourceapi.Request {
	c := *req
	c.Header = req.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Set(auth.HeaderAliTimestamp, strconv.FormatInt(p.start.Add(at).Unix(), 10))
	return &c
}

// retry resolves a retry_of: the exact request of the item it names (a
// retry of a retry is of the first), sent again at the retry's time.
func (p *testParser) retry(t *ruleTest, it *timelineItem, depth int) {
	of := t.ids[it.retryOf.id]
	if of == nil {
		return // reported
	}
	if of.retryOf != nil && of.req == nil && depth < len(t.items) {
		p.retry(t, of, depth+1)
	}
	switch {
	case of.req == nil:
		p.diags.At(p.file, it.node, "retry_of: %q sends nothing to send again", of.id)
	case of.at > it.at:
		p.diags.At(p.file, it.node, "retry_of: %q is sent at %s, after this retry at %s", of.id, fmtOffset(of.at), fmtOffset(it.at))
	default:
		it.retryOf, it.source, it.name, it.req = of, of.source, of.name, of.req
	}
}

func (p *testParser) expectation(t *ruleTest, n *yaml.Node) *expectation {
	if n.Kind != yaml.MappingNode {
		p.diags.At(p.file, n, "an expectation: want a mapping with rule and at (or between)")
		return nil
	}
	e := &expectation{line: n.Line, nodes: expectNodes{keyNodes: map[string]*yaml.Node{}, sendNodes: map[string]*yaml.Node{}}}
	timed := 0
	yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
		switch k.Value {
		case "rule":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.diags.At(p.file, v, "rule: want a rule's name")
			}
			e.rule, e.nodes.rule = v.Value, v
		case "at":
			timed++
			e.nodes.when = v
			if d, ok := p.offset(v, "at"); ok {
				e.at, e.to = d, d
			}
		case "between":
			timed++
			e.nodes.when, e.between = v, true
			if v.Kind != yaml.SequenceNode || len(v.Content) != 2 {
				p.diags.At(p.file, v, "between: want [earliest, latest], two offsets from the start")
				return
			}
			a, okA := p.offset(v.Content[0], "between")
			b, okB := p.offset(v.Content[1], "between")
			if okA && okB && b < a {
				p.diags.At(p.file, v, "between: %s is after %s", fmtOffset(a), fmtOffset(b))
			}
			e.at, e.to = a, b
		case "key":
			e.nodes.keys = v
			if v.Kind != yaml.MappingNode {
				p.diags.At(p.file, v, "key: want the key's fields and values, such as {stream: room42}")
				return
			}
			e.key = map[string]string{}
			yamlconf.ForEachKey(p.file, v, &p.diags, func(kk, kv *yaml.Node) {
				if kv.Kind != yaml.ScalarNode {
					p.diags.At(p.file, kv, "key: %s: want a value", kk.Value)
					return
				}
				e.key[kk.Value], e.nodes.keyNodes[kk.Value] = kv.Value, kk
				e.keyOrder = append(e.keyOrder, kk.Value)
			})
		case "count":
			e.nodes.count = v
			c, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil || c < 0 {
				p.diags.At(p.file, v, "count: want a whole number")
				return
			}
			e.count = &c
		case "late":
			var b bool
			if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil {
				p.diags.At(p.file, v, "late: want true or false")
				return
			}
			e.late = &b
		case "caused_by":
			if v.Kind != yaml.SequenceNode {
				p.diags.At(p.file, v, "caused_by: want a list of timeline ids")
				return
			}
			for _, c := range v.Content {
				if _, ok := t.ids[c.Value]; c.Kind != yaml.ScalarNode || !ok {
					p.diags.At(p.file, c, "caused_by: no item of this timeline has id %q", c.Value)
					continue
				}
				e.causedBy = append(e.causedBy, c.Value)
			}
		case "sends":
			e.nodes.sends = v
			p.sends(e, v)
		default:
			p.unknown(k, expectationKeys)
		}
	})
	if e.nodes.rule == nil {
		p.diags.At(p.file, n, "an expectation: rule: is required")
	}
	switch {
	case timed == 0:
		p.diags.At(p.file, n, "an expectation: at: or between: is required")
	case timed > 1:
		p.diags.At(p.file, n, "an expectation: at or between, not both")
	case e.to > t.until && e.nodes.when != nil && (e.at > t.until || !e.between):
		p.diags.At(p.file, e.nodes.when, "the timeline ends at %s: nothing can fire at %s (until: moves the end)", fmtOffset(t.until), fmtOffset(e.at))
	}
	return e
}

// sends reads sends: {ACTION: {contains: TEXT}}.
func (p *testParser) sends(e *expectation, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.diags.At(p.file, n, `sends: want {ACTION: {contains: "text"}}`)
		return
	}
	e.sends = map[string]string{}
	yamlconf.ForEachKey(p.file, n, &p.diags, func(k, v *yaml.Node) {
		if v.Kind != yaml.MappingNode {
			p.diags.At(p.file, v, `sends: %s: want {contains: "text"}`, k.Value)
			return
		}
		yamlconf.ForEachKey(p.file, v, &p.diags, func(kk, kv *yaml.Node) {
			if kk.Value != "contains" {
				p.unknown(kk, []string{"contains"})
				return
			}
			if kv.Kind != yaml.ScalarNode {
				p.diags.At(p.file, kv, "sends: %s: contains: want text", k.Value)
				return
			}
			e.sends[k.Value], e.nodes.sendNodes[k.Value] = kv.Value, k
			e.sendOrder = append(e.sendOrder, k.Value)
		})
	})
}

// checkAgainst reports what a test file's expectations say of rules that
// set does not have: an unknown rule, a key field the rule does not key
// by, a count of a rule that counts nothing, an action the rule does not
// use.
func (f *ruleTestFile) checkAgainst(set *rules.Set) error {
	var l yamlconf.List
	var names []string
	for _, r := range set.Rules {
		names = append(names, r.Name)
	}
	for _, t := range f.tests {
		for _, e := range t.expect {
			r := set.Rule(e.rule)
			if r == nil {
				l.At(f.path, e.nodes.rule, "unknown rule %q (the rules are %s)", e.rule, strings.Join(names, ", "))
				continue
			}
			keyFields := []string{"domain", "app", "stream"}
			if r.Temporal != nil {
				keyFields = r.Temporal.By
			}
			for _, k := range e.keyOrder {
				if !slices.Contains(keyFields, k) {
					l.At(f.path, e.nodes.keyNodes[k], "key: rule %q is keyed by %s, not %s", r.Name, strings.Join(keyFields, ", "), k)
				}
			}
			if e.count != nil && (r.Temporal == nil || r.Temporal.Count == nil && r.Temporal.Session == nil && r.Temporal.Digest == nil) {
				l.At(f.path, e.nodes.count, "count: rule %q counts nothing: only count, session and digest rules fire with a count", r.Name)
			}
			var actions []string
			for _, s := range r.Steps {
				actions = append(actions, s.Action)
			}
			if r.Shadow && e.nodes.sends != nil {
				l.At(f.path, e.nodes.sends, "sends: rule %q is in shadow mode: it sends nothing", r.Name)
				continue
			}
			for _, a := range e.sendOrder {
				if !slices.Contains(actions, a) {
					l.At(f.path, e.nodes.sendNodes[a], "sends: rule %q does not send to %q (its steps: %s)", r.Name, a, strings.Join(actions, ", "))
				}
			}
		}
	}
	return l.Err()
}
