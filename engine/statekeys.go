package engine

import (
	"cmp"
	"container/list"
	"context"
	"slices"
	"sync"

	"github.com/livehook/livehook/engine/store"
)

// DefaultStateMaxKeys bounds the keys all rules over time keep state for.
const DefaultStateMaxKeys = 100_000

// stateKeys is the evaluator's index of the keys rules over time keep
// state for, least recently used first, to hold max_keys per rule and
// --state-max-keys overall. At a cap the least recently used key without
// a timer is evicted; a new key when every key has a timer is refused, so
// a pending expectation is never lost silently. It is rebuilt from the
// store at start (a store shared by several processes is capped per
// process).
type stateKeys struct {
	mu     sync.Mutex // the evaluator writes, metrics read
	max    int
	all    *list.List // of *keyUse, least recently used at the front
	byName map[string]*list.Element
	rules  map[string]int // keys per rule
}

type keyUse struct {
	name, rule string
	timer      bool
}

func newStateKeys(max int) *stateKeys {
	return &stateKeys{max: max, all: list.New(), byName: map[string]*list.Element{}, rules: map[string]int{}}
}

// load fills the index from the store, oldest writes first.
func (k *stateKeys) load(ctx context.Context, st store.Store) error {
	var entries []store.StateEntry
	for after := ""; ; {
		page, err := st.ListState(ctx, "t\x00", after, 10_000)
		if err != nil {
			return err
		}
		entries = append(entries, page...)
		if len(page) < 10_000 {
			break
		}
		after = page[len(page)-1].Key
	}
	// A store's versions grow with every write: the lowest is the least
	// recently written.
	slices.SortFunc(entries, func(a, b store.StateEntry) int { return cmp.Compare(a.Version, b.Version) })
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range entries {
		if rule, _, _, ok := parseStateKey(e.Key); ok {
			k.touchLocked(rule, e.Key, !e.Due.IsZero())
		}
	}
	return nil
}

// known reports whether name has state.
func (k *stateKeys) known(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.byName[name]
	return ok
}

// admit makes room for a new key of rule: the keys to evict for it, or
// false if it must be refused.
func (k *stateKeys) admit(rule, name string, maxKeys int, timer bool, keep func(string) bool) (evict []string, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.rules[rule] >= maxKeys {
		victim := k.lruWithoutTimer(rule, keep)
		if victim == "" {
			return nil, false
		}
		evict = append(evict, victim)
	}
	if len(k.byName)-len(evict) >= k.max {
		victim := k.lruWithoutTimer("", keep)
		if victim == "" {
			return nil, false
		}
		evict = append(evict, victim)
	}
	for _, v := range evict {
		k.removeLocked(v)
	}
	k.touchLocked(rule, name, timer)
	return evict, true
}

// lruWithoutTimer is the least recently used key without a timer, of rule
// or of any rule, that keep does not hold on to.
func (k *stateKeys) lruWithoutTimer(rule string, keep func(string) bool) string {
	for e := k.all.Front(); e != nil; e = e.Next() {
		u := e.Value.(*keyUse)
		if !u.timer && (rule == "" || u.rule == rule) && !keep(u.name) {
			return u.name
		}
	}
	return ""
}

// touch records a write of name's state.
func (k *stateKeys) touch(rule, name string, timer bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.touchLocked(rule, name, timer)
}

func (k *stateKeys) touchLocked(rule, name string, timer bool) {
	if e, ok := k.byName[name]; ok {
		e.Value.(*keyUse).timer = timer
		k.all.MoveToBack(e)
		return
	}
	k.byName[name] = k.all.PushBack(&keyUse{name: name, rule: rule, timer: timer})
	k.rules[rule]++
}

// remove forgets name, whose state was deleted.
func (k *stateKeys) remove(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.removeLocked(name)
}

func (k *stateKeys) removeLocked(name string) {
	e, ok := k.byName[name]
	if !ok {
		return
	}
	u := e.Value.(*keyUse)
	k.all.Remove(e)
	delete(k.byName, name)
	if k.rules[u.rule]--; k.rules[u.rule] <= 0 {
		delete(k.rules, u.rule)
	}
}

// dropRule forgets every key of rule (a reload dropped its state).
func (k *stateKeys) dropRule(rule string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for e := k.all.Front(); e != nil; {
		next := e.Next()
		if u := e.Value.(*keyUse); u.rule == rule {
			k.removeLocked(u.name)
		}
		e = next
	}
}

// perRule counts the keys of each rule.
func (k *stateKeys) perRule() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]int, len(k.rules))
	for r, n := range k.rules {
		out[r] = n
	}
	return out
}
