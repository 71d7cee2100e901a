package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// The correlate stage runs the rules over time. Each (rule, key) has one
// state entry in the store, changed with the evaluation of the event (or
// the timer) that changed it; a pending expectation, an open session or a
// digest bucket is the entry's timer. What a rule fires becomes an
// ordinary delivery job, carrying what its templates render (the key, the
// trigger, the events gathered) as its firing.

// DefaultStateOutageTolerance is how overdue a timer may be, after the
// daemon was down, and still fire (late).
const DefaultStateOutageTolerance = time.Hour

// prevRetention is how long a key's prev is kept without a new event.
const prevRetention = 7 * 24 * time.Hour

// stateKey names the state of one key of a rule over time. The rule's
// definition hash is part of it: a reload that changes the definition
// leaves the old state behind, to be dropped.
func stateKey(r *rules.Rule, key []string) string {
	return statePrefix(r.Name, r.Temporal.Hash) + storeKey(strings.Join(key, "\x00"))
}

// maxKeyText bounds the key values a state key holds as they are: they
// come from callback fields of any length, and a store may refuse long
// keys (bbolt: 32 KiB). A longer one is held by its SHA-256; the values
// themselves are in the state.
const maxKeyText = 512

func storeKey(values string) string {
	if len(values) <= maxKeyText {
		return values
	}
	sum := sha256.Sum256([]byte(values))
	return "#" + hex.EncodeToString(sum[:])
}

func statePrefix(rule, hash string) string { return "t\x00" + rule + "\x00" + hash + "\x00" }

// parseStateKey splits a state key into rule, hash and key values.
func parseStateKey(k string) (rule, hash string, key []string, ok bool) {
	parts := strings.Split(k, "\x00")
	if len(parts) < 3 || parts[0] != "t" {
		return "", "", nil, false
	}
	return parts[1], parts[2], parts[3:], true
}

// keyState is one key's state, as stored.
type keyState struct {
	Key  []string     `json:"key"`
	Prev *event.Event `json:"prev,omitempty"`
	Seen time.Time    `json:"seen"` // the key's last event
	// expect
	Trigger  *event.Event `json:"trigger,omitempty"`
	Deadline time.Time    `json:"deadline,omitzero"`
	// count
	Times  []time.Time          `json:"times,omitempty"`  // the last at_least matches
	Values map[string]time.Time `json:"values,omitempty"` // distinct: value → last seen
	Fired  bool                 `json:"fired,omitempty"`  // rearm below: fired, not yet below the threshold
	// session, digest
	Open    bool           `json:"open,omitempty"`
	Since   time.Time      `json:"since,omitzero"` // the session's start, the bucket's start
	Until   time.Time      `json:"until,omitzero"` // the bucket's flush time
	Events  []*event.Event `json:"events,omitempty"`
	Count   int            `json:"count,omitempty"`
	Dropped int            `json:"dropped,omitempty"`
}

// valid reports whether a decoded state is one the stages can act on: a
// session or digest that counts items holds the first of them.
func (k *keyState) valid() bool {
	return !(k.Count > 0 && len(k.Events) == 0) && !slices.Contains(k.Events, nil)
}

// due is when the key's timer fires; zero if it has none.
func (k *keyState) due(t *rules.Temporal) time.Time {
	switch {
	case t.Expect != nil && k.Trigger != nil:
		return k.Deadline
	case t.Session != nil && k.Open:
		return k.Seen.Add(t.Session.Idle)
	case t.Digest != nil && k.Count > 0:
		return k.Until
	}
	return time.Time{}
}

// empty reports whether the state holds nothing worth keeping.
func (k *keyState) empty(t *rules.Temporal) bool {
	return k.Prev == nil && k.Trigger == nil && len(k.Times) == 0 && len(k.Values) == 0 && !k.Open && k.Count == 0
}

// expires is when the state may be forgotten.
func (k *keyState) expires(t *rules.Temporal, tolerance time.Duration) time.Time {
	var at time.Time
	later := func(x time.Time) {
		if x.After(at) {
			at = x
		}
	}
	if due := k.due(t); !due.IsZero() {
		later(due.Add(tolerance))
	}
	if c := t.Count; c != nil {
		for _, x := range k.Times {
			later(x.Add(c.Within))
		}
		for _, x := range k.Values {
			later(x.Add(c.Within))
		}
	}
	if k.Prev != nil {
		later(k.Seen.Add(prevRetention))
	}
	return at
}

// firing is what a rule over time fired with: stored with its jobs, it is
// what their templates render besides the event.
type firing struct {
	Key     map[string]string `json:"key"`
	Prev    *event.Event      `json:"prev,omitempty"`
	Trigger *event.Event      `json:"trigger,omitempty"`
	Events  []*event.Event    `json:"events,omitempty"`
	Count   int               `json:"count,omitempty"`
	Window  string            `json:"window,omitempty"`
	Waited  string            `json:"waited,omitempty"`
	Late    bool              `json:"late,omitempty"`
	Dropped int               `json:"dropped,omitempty"`
}

// templateData is what a firing adds to a delivery's template data.
func (f *firing) templateData() map[string]any {
	key := make(map[string]any, len(f.Key))
	for k, v := range f.Key {
		key[k] = v
	}
	m := map[string]any{"key": key, "count": f.Count, "window": f.Window, "waited": f.Waited,
		"late": f.Late, "dropped": f.Dropped}
	if f.Prev != nil {
		m["prev"] = event.TemplateData(f.Prev, nil)
	}
	if f.Trigger != nil {
		m["trigger"] = event.TemplateData(f.Trigger, nil)
	}
	events := make([]map[string]any, len(f.Events))
	for i, ev := range f.Events {
		events[i] = event.TemplateData(ev, nil)
	}
	m["events"] = events
	return m
}

// fired is one firing of a rule, on its way to the throttle and planning.
type fired struct {
	rule   *rules.Rule
	ev     *event.Event // the event its jobs belong to
	firing *firing
	out    *store.Evaluation // the evaluation its jobs are committed with
}

// compact is an event as state keeps it: without its payload.
func compact(ev *event.Event) *event.Event {
	c := *ev
	c.Payload = nil
	return &c
}

// keyState decoding, with what a batch decided so far.
type stateCache struct {
	stored  map[string]store.State
	decided map[string]*cachedState
	order   []string
}

type cachedState struct {
	st       *keyState
	read     uint64
	changed  bool
	admitted bool // known to the key index, or made room for
	refused  bool // a new key at a cap whose keys all have timers
}

func (c *stateCache) get(k string, key []string) *cachedState {
	if cs, ok := c.decided[k]; ok {
		return cs
	}
	st := c.stored[k]
	cs := &cachedState{read: st.Version, st: &keyState{}}
	if st.Value == nil || json.Unmarshal(st.Value, cs.st) != nil || !cs.st.valid() {
		cs.st = &keyState{} // none, expired, or unreadable: start afresh
	}
	cs.st.Key = key
	c.decided[k] = cs
	c.order = append(c.order, k)
	return cs
}

// keyMap names a key's values by the rule's by fields.
func keyMap(t *rules.Temporal, key []string) map[string]string {
	m := make(map[string]string, len(key))
	for i, f := range t.By {
		if i < len(key) {
			m[f] = key[i]
		}
	}
	return m
}

// correlate runs the rules over time on a batch of events, in order,
// recording each key's new state in the evaluation of the event that
// changed it last, and returns what fired.
func (v *evaluator) correlate(ctx context.Context, m *rules.Matcher, set *rules.Set, batch []*store.Accepted, evals []*store.Evaluation) ([]fired, error) {
	var temporal []*rules.Rule
	for _, r := range set.Rules {
		if r.Enabled && r.Temporal != nil {
			temporal = append(temporal, r)
		}
	}
	if len(temporal) == 0 {
		return nil, nil
	}
	keys := make([][]string, len(batch)*len(temporal))
	names := make([]string, 0, len(keys))
	for i, a := range batch {
		for j, r := range temporal {
			key := r.Temporal.KeyOf(a.Event)
			keys[i*len(temporal)+j] = key
			names = append(names, stateKey(r, key))
		}
	}
	stored, err := v.store.State(ctx, names, v.now())
	if err != nil {
		return nil, fmt.Errorf("read rule state: %w", err)
	}
	cache := &stateCache{stored: stored, decided: map[string]*cachedState{}}
	var out []fired
	var evicted []string
	lastChange := map[string]int{} // state key → the batch index that changed it last
	for i, a := range batch {
		ev := a.Event
		for j, r := range temporal {
			name := names[i*len(temporal)+j]
			cs := cache.get(name, keys[i*len(temporal)+j])
			if cs.refused {
				continue
			}
			f, matched, changed, err := v.step(m, r, cs.st, ev)
			if err != nil {
				v.metrics.ruleErrors.WithLabelValues(r.Name).Inc()
				msg := set.Secrets.Redact(err.Error())
				evals[i].Errors = append(evals[i].Errors, msg)
				v.log.Warn("rule condition failed", "event_id", ev.ID, "rule", r.Name, "err", msg)
			}
			if matched {
				evals[i].Fed = append(evals[i].Fed, r.Name)
			}
			for k := range f {
				f[k].out = evals[i]
			}
			out = append(out, f...)
			if changed && !cs.admitted {
				evict, ok := v.admit(r, name, cs, cache.decided)
				if !ok {
					cache.decided[name] = &cachedState{refused: true, st: &keyState{}}
					continue
				}
				evicted = append(evicted, evict...)
			}
			if changed {
				cs.changed = true
				lastChange[name] = i
			}
		}
	}
	if len(evicted) > 0 {
		// Evicted keys are deleted in the batch's last evaluation.
		old, err := v.store.State(ctx, evicted, v.now())
		if err != nil {
			return nil, fmt.Errorf("read evicted rule state: %w", err)
		}
		last := evals[len(evals)-1]
		for _, name := range evicted {
			last.State = append(last.State, store.StateChange{Key: name, Read: old[name].Version})
		}
	}
	for _, name := range cache.order {
		cs := cache.decided[name]
		if !cs.changed {
			continue
		}
		rule, _, _, _ := parseStateKey(name)
		r := set.Rule(rule)
		change, err := v.stateChange(name, r.Temporal, cs)
		if err != nil {
			return nil, err
		}
		v.indexChange(rule, change)
		i := lastChange[name]
		evals[i].State = append(evals[i].State, change)
	}
	return out, nil
}

// admit makes room for a key that is about to get state, or refuses it.
// Keys this batch has decided on are not evicted: their state is not in
// the index yet.
func (v *evaluator) admit(r *rules.Rule, name string, cs *cachedState, batch map[string]*cachedState) (evict []string, ok bool) {
	if cs.read != 0 || v.keys.known(name) {
		cs.admitted = true
		return nil, true
	}
	inBatch := func(k string) bool { _, ok := batch[k]; return ok }
	evict, ok = v.keys.admit(r.Name, name, r.Temporal.MaxKeys, !cs.st.due(r.Temporal).IsZero(), inBatch)
	if !ok {
		v.metrics.stateRefused.WithLabelValues(r.Name).Inc()
		v.log.Warn("rule state refused: at the key cap, and every key has a pending timer", "rule", r.Name,
			"key", strings.Join(cs.st.Key, "/"), "max_keys", r.Temporal.MaxKeys)
		return nil, false
	}
	cs.admitted = true
	return evict, true
}

// indexChange keeps the key index in step with a state write.
func (v *evaluator) indexChange(rule string, c store.StateChange) {
	if c.Value == nil {
		v.keys.remove(c.Key)
		return
	}
	v.keys.touch(rule, c.Key, !c.Due.IsZero())
}

// stateChange is the store write of a key's decided state.
func (v *evaluator) stateChange(name string, t *rules.Temporal, cs *cachedState) (store.StateChange, error) {
	c := store.StateChange{Key: name, Read: cs.read}
	if cs.st.empty(t) {
		return c, nil // deletes it
	}
	value, err := json.Marshal(cs.st)
	if err != nil {
		return c, fmt.Errorf("encode rule state: %w", err)
	}
	c.Value, c.Due, c.Expires = value, cs.st.due(t), cs.st.expires(t, v.tolerance)
	return c, nil
}

// step applies one event to one key of a rule over time: what fired,
// whether its condition matched, and whether the state changed.
func (v *evaluator) step(m *rules.Matcher, r *rules.Rule, st *keyState, ev *event.Event) (out []fired, matched, changed bool, err error) {
	t := r.Temporal
	at := ev.ReceivedAt
	env := &rules.Env{Event: *ev, Prev: st.Prev}
	// A timer that came due before this event fires first: the event
	// belongs after it.
	if due := st.due(t); !due.IsZero() && !at.Before(due) {
		out = append(out, v.expire(r, st, due, false)...)
		changed = true
	}
	fire := func(f *firing, of *event.Event) {
		f.Key = keyMap(t, st.Key)
		if f.Prev == nil && st.Prev != nil && t.Block() == "" {
			f.Prev = st.Prev
		}
		out = append(out, fired{rule: r, ev: of, firing: f})
	}
	// Events of the key that close or cancel, whether or not when matches.
	switch {
	case t.Expect != nil && st.Trigger != nil:
		if ok, e := m.Eval(t.Expect.Match, env); e != nil {
			err = e
		} else if ok {
			st.Trigger, st.Deadline, changed = nil, time.Time{}, true
		} else if ok, e := m.Eval(t.Expect.Until, env); e != nil {
			err = e
		} else if ok {
			st.Trigger, st.Deadline, changed = nil, time.Time{}, true
		}
	case t.Session != nil:
		if ok, e := m.Eval(t.Session.Start, env); e != nil {
			err = e
		} else if ok {
			if st.Open && st.Count > 0 {
				out = append(out, v.closeSession(r, st, false)...)
			}
			st.Open, st.Since, st.Events, st.Count, st.Dropped, changed = true, at, nil, 0, 0, true
		}
	}
	ok, e := m.WhenEnv(r, env)
	if e != nil {
		err = e
	}
	matched = ok && e == nil
	if matched {
		changed = true
		switch {
		case t.Expect != nil:
			if st.Trigger == nil || !t.Expect.Keep {
				st.Trigger, st.Deadline = compact(ev), at.Add(t.Expect.Within)
			}
		case t.Count != nil:
			if f := v.count(t.Count, st, ev); f != nil {
				fire(f, ev)
			}
		case t.Session != nil:
			if !st.Open { // a match with no session open opens one: a missed start must not lose files
				st.Open, st.Since = true, at
			}
			gather(st, ev, t.Session.MaxItems)
		case t.Digest != nil:
			if st.Count == 0 {
				st.Since, st.Until = v.bucket(t.Digest, at)
			}
			gather(st, ev, t.Digest.MaxItems)
		default: // prev only: fires as a single-event rule does
			fire(&firing{}, ev)
		}
	}
	if t.Session != nil && st.Open {
		changed = true // the idle timer moves with every event of the key
	}
	st.Seen = at
	if tracks, e := t.Tracks(m, env); e != nil {
		err = e
	} else if tracks {
		st.Prev, changed = compact(ev), true
	}
	return out, matched, changed, err
}

func gather(st *keyState, ev *event.Event, maxItems int) {
	st.Count++
	if len(st.Events) < maxItems {
		st.Events = append(st.Events, compact(ev))
	} else {
		st.Dropped++
	}
}

// count adds a match to a count window and returns the firing, if any.
func (v *evaluator) count(c *rules.Count, st *keyState, ev *event.Event) *firing {
	at := ev.ReceivedAt
	from := at.Add(-c.Within) // the window is (at-within, at]
	var n int
	if c.Distinct != "" {
		for val, seen := range st.Values {
			if !seen.After(from) {
				delete(st.Values, val)
			}
		}
		before := len(st.Values)
		val := rules.FieldText(ev, c.Distinct)
		if _, ok := st.Values[val]; ok || len(st.Values) < c.MaxDistinct {
			if st.Values == nil {
				st.Values = map[string]time.Time{}
			}
			st.Values[val] = at
		}
		if before < c.AtLeast {
			st.Fired = false // it was below the threshold: re-armed
		}
		n = len(st.Values)
	} else {
		kept := st.Times[:0]
		for _, x := range st.Times {
			if x.After(from) {
				kept = append(kept, x)
			}
		}
		if len(kept) < c.AtLeast {
			st.Fired = false
		}
		kept = append(kept, at)
		if len(kept) > c.AtLeast {
			kept = kept[len(kept)-c.AtLeast:] // the threshold holds iff the oldest kept is inside
		}
		st.Times = kept
		n = len(kept)
	}
	if n < c.AtLeast {
		return nil
	}
	switch c.Rearm {
	case "every":
	case "reset":
		st.Times, st.Values = nil, nil
	default: // below
		if st.Fired {
			return nil
		}
		st.Fired = true
	}
	return &firing{Count: n, Window: c.Within.String()}
}

// bucket is the digest bucket a match at at opens: aligned to the clock
// in the daemon's zone for every, from the match for wait.
func (v *evaluator) bucket(d *rules.Digest, at time.Time) (since, until time.Time) {
	if d.Wait > 0 {
		return at, at.Add(d.Wait)
	}
	local := at.In(v.zone)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, v.zone)
	if d.Every <= 24*time.Hour && (24*time.Hour)%d.Every == 0 {
		since = day.Add(local.Sub(day) / d.Every * d.Every)
	} else {
		since = at.Truncate(d.Every)
	}
	return since, since.Add(d.Every)
}

// expire runs a key's due timer: what fires when an expectation's
// deadline, a session's idle time or a digest bucket's end has come.
func (v *evaluator) expire(r *rules.Rule, st *keyState, due time.Time, late bool) []fired {
	t := r.Temporal
	key := keyMap(t, st.Key)
	switch {
	case t.Expect != nil && st.Trigger != nil:
		f := &firing{Key: key, Trigger: st.Trigger, Waited: due.Sub(st.Trigger.ReceivedAt).Round(time.Second).String(),
			Window: t.Expect.Within.String(), Late: late}
		trigger := st.Trigger
		st.Trigger, st.Deadline = nil, time.Time{}
		return []fired{{rule: r, ev: trigger, firing: f}}
	case t.Session != nil && st.Open:
		return v.closeSession(r, st, late)
	case t.Digest != nil && st.Count > 0:
		f := &firing{Key: key, Events: st.Events, Count: st.Count, Dropped: st.Dropped, Late: late,
			Window: fmt.Sprintf("%s from %s", t.Digest.Every+t.Digest.Wait, st.Since.In(v.zone).Format(time.RFC3339))}
		first := st.Events[0]
		st.Events, st.Count, st.Dropped, st.Since, st.Until = nil, 0, 0, time.Time{}, time.Time{}
		return []fired{{rule: r, ev: first, firing: f}}
	}
	return nil
}

// closeSession ends a key's session; it fires if anything was gathered.
func (v *evaluator) closeSession(r *rules.Rule, st *keyState, late bool) []fired {
	var out []fired
	if st.Count > 0 {
		f := &firing{Key: keyMap(r.Temporal, st.Key), Events: st.Events, Count: st.Count, Dropped: st.Dropped, Late: late,
			Window: st.Seen.Sub(st.Since).Round(time.Second).String()}
		out = append(out, fired{rule: r, ev: st.Events[0], firing: f})
	}
	st.Open, st.Events, st.Count, st.Dropped, st.Since = false, nil, 0, 0, time.Time{}
	return out
}

// timers evaluates due timers: each is its own evaluation, with what it
// fired. A timer of a rule that is gone or changed is dropped; one overdue
// by more than the outage tolerance is discarded and counted.
func (v *evaluator) timers(due []store.StateEntry, set *rules.Set, now time.Time) ([]*store.Evaluation, []fired) {
	var evals []*store.Evaluation
	var out []fired
	for _, d := range due {
		eval := &store.Evaluation{}
		evals = append(evals, eval)
		drop := store.StateChange{Key: d.Key, Read: d.Version}
		ruleName, hash, key, ok := parseStateKey(d.Key)
		r := set.Rule(ruleName)
		if !ok || r == nil || r.Temporal == nil || r.Temporal.Hash != hash || !r.Enabled {
			// Its rule is gone or changed (reload dropped the rest), or
			// switched off: a timer of a rule that no longer sees its
			// key's events must not fire.
			eval.State = append(eval.State, drop)
			v.keys.remove(d.Key)
			continue
		}
		var st keyState
		if err := json.Unmarshal(d.Value, &st); err != nil || !st.valid() {
			v.log.Warn("rule state unreadable: dropped", "rule", ruleName, "err", err)
			eval.State = append(eval.State, drop)
			v.keys.remove(d.Key)
			continue
		}
		if len(st.Key) == 0 {
			st.Key = key
		}
		key = st.Key
		if overdue := now.Sub(d.Due); overdue > v.tolerance {
			v.metrics.stateExpired.WithLabelValues("outage").Inc()
			v.log.Warn("timer discarded: it came due longer ago than the outage tolerance", "rule", ruleName,
				"key", strings.Join(key, "/"), "due", d.Due, "overdue", overdue.Round(time.Second), "tolerance", v.tolerance)
			v.expire(r, &st, d.Due, true) // what it would have fired is dropped with it
		} else {
			fs := v.expire(r, &st, d.Due, d.Due.Before(v.started))
			for i := range fs {
				fs[i].out = eval
			}
			out = append(out, fs...)
		}
		change, err := v.stateChange(d.Key, r.Temporal, &cachedState{st: &st, read: d.Version})
		if err != nil {
			v.log.Error("cannot encode rule state: dropped", "rule", ruleName, "err", err)
			change = drop
		}
		v.indexChange(ruleName, change)
		eval.State = append(eval.State, change)
	}
	return evals, out
}

// hashKey records the definition a rule's state was kept under, so that a
// reload (or a start with changed rules) knows which state to drop.
func hashKey(rule string) string { return "h\x00" + rule }

// reconcileState drops the state of rules over time that a load removed
// or whose temporal definition it changed, and says so; state of rules
// whose definition holds is kept.
func (e *Engine) reconcileState(set *rules.Set) error {
	ctx := context.Background()
	known, err := e.store.ListState(ctx, "h\x00", "", 1<<20)
	if err != nil {
		return fmt.Errorf("read rule state definitions: %w", err)
	}
	current := map[string]string{}
	for _, r := range set.Rules {
		if r.Temporal != nil {
			current[r.Name] = r.Temporal.Hash
		}
	}
	var changes []store.StateChange
	for _, k := range known {
		rule, old := strings.TrimPrefix(k.Key, "h\x00"), string(k.Value)
		hash, still := current[rule]
		if still && hash == old {
			delete(current, rule)
			continue
		}
		n, err := e.store.DropState(ctx, statePrefix(rule, old))
		if err != nil {
			return err
		}
		e.evaluator.keys.dropRule(rule)
		why := "the rule is gone"
		if still {
			why = "its temporal definition (by, track, when or the temporal block) changed"
		}
		if n > 0 {
			e.metrics.stateDropped.WithLabelValues(rule).Add(float64(n))
			e.log.Warn("rule state dropped", "rule", rule, "keys", n, "why", why)
		}
		if !still {
			changes = append(changes, store.StateChange{Key: k.Key, Read: k.Version})
		}
	}
	for rule, hash := range current {
		var read uint64
		for _, k := range known {
			if k.Key == hashKey(rule) {
				read = k.Version
			}
		}
		changes = append(changes, store.StateChange{Key: hashKey(rule), Read: read, Value: []byte(hash),
			Expires: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	if len(changes) == 0 {
		return nil
	}
	if err := e.store.Commit(ctx, []*store.Evaluation{{State: changes}}); err != nil {
		return fmt.Errorf("record rule state definitions: %w", err)
	}
	return nil
}

// StateReport is one key of a rule over time, for GET /api/state.
type StateReport struct {
	Rule  string            `json:"rule"`
	Block string            `json:"block,omitempty"` // expect, count, session, digest; none for prev only
	Key   map[string]string `json:"key"`
	// A pending timer: an expectation's deadline, a session's idle end, a
	// digest bucket's flush.
	Due       *time.Time   `json:"due,omitempty"`
	Count     int          `json:"count,omitempty"`     // in the window, session or bucket
	Threshold int          `json:"threshold,omitempty"` // count's at_least
	Window    string       `json:"window,omitempty"`
	Trigger   *event.Event `json:"trigger,omitempty"`
	Prev      *event.Event `json:"prev,omitempty"`
	Since     *time.Time   `json:"since,omitempty"` // the session's or bucket's start
	Dropped   int          `json:"dropped,omitempty"`
	LastEvent time.Time    `json:"last_event"`
	Expires   time.Time    `json:"expires"`
}

// State lists the state of rules over time: of one rule or all, and of
// keys whose values, joined by "/" in the rule's by order, start with
// key.
func (e *Engine) State(rule, key string, limit int) ([]StateReport, error) {
	if limit <= 0 {
		limit = 100
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		return nil, ErrStopped // its rule set is retired
	}
	set := e.acquire()
	defer set.Release()
	out := []StateReport{}
	found := false
	for _, r := range set.Rules {
		t := r.Temporal
		if t == nil || rule != "" && r.Name != rule {
			continue
		}
		found = true
		prefix := statePrefix(r.Name, t.Hash) + strings.ReplaceAll(key, "/", "\x00")
		entries, err := e.store.ListState(context.Background(), prefix, "", limit-len(out))
		if err != nil {
			return nil, err
		}
		for _, en := range entries {
			var st keyState
			if err := json.Unmarshal(en.Value, &st); err != nil {
				return nil, fmt.Errorf("rule %s: state %q: %w", r.Name, en.Key, err)
			}
			_, _, values, _ := parseStateKey(en.Key)
			if len(st.Key) > 0 {
				values = st.Key // the key's own values, also when the store key holds their hash
			}
			out = append(out, report(r, values, &st, en))
		}
		if len(out) >= limit {
			break
		}
	}
	if rule != "" && !found {
		return nil, fmt.Errorf("no rule over time named %q: %w", rule, store.ErrNotFound)
	}
	return out, nil
}

func report(r *rules.Rule, values []string, st *keyState, en store.StateEntry) StateReport {
	t := r.Temporal
	rep := StateReport{Rule: r.Name, Block: t.Block(), Key: keyMap(t, values), Prev: st.Prev, Trigger: st.Trigger,
		Dropped: st.Dropped, LastEvent: st.Seen, Expires: en.Expires}
	if !en.Due.IsZero() {
		due := en.Due
		rep.Due = &due
	}
	switch {
	case t.Count != nil:
		rep.Threshold, rep.Window = t.Count.AtLeast, t.Count.Within.String()
		rep.Count = len(st.Times) + len(st.Values)
	case t.Session != nil, t.Digest != nil:
		rep.Count = st.Count
		if !st.Since.IsZero() {
			since := st.Since
			rep.Since = &since
		}
	case t.Expect != nil:
		rep.Window = t.Expect.Within.String()
	}
	return rep
}
