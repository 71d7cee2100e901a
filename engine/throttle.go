package engine

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

// throttle holds back repeated deliveries of a rule for one key within its
// window. Its state is keyed by rule name, so it survives reloads.
type throttle struct {
	now     func() time.Time
	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	until      time.Time
	suppressed int
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, windows: map[string]*window{}}
}

// admit reports whether r's actions run for ev and, if they do, how many
// matches were held back since the previous delivery for the same key.
func (t *throttle) admit(r *rules.Rule, ev *event.Event) (suppressed int, run bool) {
	if r.Throttle == nil {
		return 0, true
	}
	key := throttleKey(r, ev)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.windows[key]
	if ok && now.Before(w.until) {
		w.suppressed++
		return 0, false
	}
	if !ok {
		w = &window{}
		t.windows[key] = w
		t.sweep(now)
	}
	suppressed, w.suppressed = w.suppressed, 0
	w.until = now.Add(r.Throttle.Window)
	return suppressed, true
}

// sweep drops windows that have ended with nothing held back, so the map
// stays as small as the set of recently active keys.
func (t *throttle) sweep(now time.Time) {
	if len(t.windows)%1024 != 0 {
		return
	}
	for k, w := range t.windows {
		if !now.Before(w.until) && w.suppressed == 0 {
			delete(t.windows, k)
		}
	}
}

func throttleKey(r *rules.Rule, ev *event.Event) string {
	data := event.TemplateData(ev, nil)
	var b strings.Builder
	b.WriteString(r.Name)
	for _, f := range r.Throttle.By {
		b.WriteByte(0)
		fmt.Fprint(&b, data[f])
	}
	return b.String()
}
