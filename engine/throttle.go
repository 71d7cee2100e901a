package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/store"
)

// The throttle stage holds back repeated deliveries of a rule for one key
// within its window. Its windows are store state, keyed by rule name and
// the values of the rule's `by` fields, so they survive reloads and
// restarts and are shared by whoever shares the store.

// window is one key's throttle state.
type window struct {
	Until      time.Time `json:"until"`
	Suppressed int       `json:"suppressed,omitempty"`
}

// heldBackFor is how long held-back matches are remembered after their
// window ends, to be counted in the next delivery for the key.
const heldBackFor = 24 * time.Hour

// match is one rule an event matched, on its way through the stages.
type match struct {
	out    *store.Evaluation
	ev     *event.Event
	rule   *rules.Rule
	firing *firing // what a rule over time fired with; nil for a match
	key    string  // the throttle key; "" for a rule without a throttle
}

// throttle admits or holds back each match, in order, and records the
// windows it changed in the match's evaluation. It returns, per admitted
// match, how many were held back since the last delivery for its key.
func (v *evaluator) throttle(ctx context.Context, ms []match, now time.Time) (map[int]int, error) {
	var keys []string
	for i := range ms {
		if ms[i].rule.Throttle != nil {
			ms[i].key = throttleKey(ms[i].rule, ms[i].ev)
			keys = append(keys, ms[i].key)
		}
	}
	admitted := map[int]int{}
	if len(keys) == 0 {
		for i := range ms {
			admitted[i] = 0
		}
		return admitted, nil
	}
	stored, err := v.store.State(ctx, keys, now)
	if err != nil {
		return nil, fmt.Errorf("read throttle windows: %w", err)
	}
	type seen struct {
		w    window
		read uint64
	}
	batch := map[string]*seen{} // what this batch has decided so far
	for i, m := range ms {
		if m.key == "" {
			admitted[i] = 0
			continue
		}
		cur, ok := batch[m.key]
		if !ok {
			st := stored[m.key]
			cur = &seen{read: st.Version}
			if st.Value != nil {
				if err := json.Unmarshal(st.Value, &cur.w); err != nil {
					v.log.Warn("throttle window unreadable: starting afresh", "rule", m.rule.Name, "err", err)
					cur.w = window{}
				}
			}
			batch[m.key] = cur
		}
		w := cur.w
		if now.Before(w.Until) {
			w.Suppressed++
		} else {
			admitted[i] = w.Suppressed
			w = window{Until: now.Add(m.rule.Throttle.Window)}
		}
		expires := w.Until
		if w.Suppressed > 0 {
			expires = w.Until.Add(heldBackFor)
		}
		value, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		m.out.State = append(m.out.State, store.StateChange{Key: m.key, Read: cur.read, Value: value, Expires: expires})
		cur.w = w
	}
	return admitted, nil
}

func throttleKey(r *rules.Rule, ev *event.Event) string {
	data := event.TemplateData(ev, nil)
	var b strings.Builder
	for _, f := range r.Throttle.By {
		b.WriteByte(0)
		fmt.Fprint(&b, data[f])
	}
	return "throttle\x00" + r.Name + storeKey(b.String())
}
