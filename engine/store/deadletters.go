package store

import (
	"cmp"
	"slices"
	"time"
)

// DeadGroup is the dead letters of one action that failed alike.
type DeadGroup struct {
	Action string `json:"action"`
	// Class is the outcome of the last attempt: "permanent" (the service
	// refused it) or "retryable" (given up after retries or age); empty
	// for a job that never ran.
	Class  string    `json:"class"`
	Error  string    `json:"error"`
	Count  int       `json:"count"`
	Newest time.Time `json:"newest"` // when the latest of them was created
}

// Class is the outcome of a job's last attempt, as DeadGroup names it.
func (j *Job) Class() string {
	if len(j.Attempts) == 0 {
		return ""
	}
	return j.Attempts[len(j.Attempts)-1].Outcome
}

// Selects reports whether f selects dead letter j, its Limit and Before
// aside.
func (f DeadFilter) Selects(j *Job) bool {
	return (f.Action == "" || j.Action == f.Action) && (f.Error == "" || j.LastError == f.Error) &&
		(f.From.IsZero() || !j.Created.Before(f.From)) && (f.To.IsZero() || j.Created.Before(f.To))
}

// groupDead counts jobs into groups, largest first, then newest, then by
// action and error so that the order is stable.
func groupDead(jobs func(yield func(*Job) bool)) []DeadGroup {
	type key struct{ action, class, err string }
	at := map[key]int{}
	out := []DeadGroup{}
	for j := range jobs {
		k := key{j.Action, j.Class(), j.LastError}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, DeadGroup{Action: k.action, Class: k.class, Error: k.err})
		}
		g := &out[i]
		g.Count++
		if j.Created.After(g.Newest) {
			g.Newest = j.Created
		}
	}
	SortDeadGroups(out)
	return out
}

// SortDeadGroups puts groups in the order DeadGroups answers in.
func SortDeadGroups(gs []DeadGroup) {
	slices.SortFunc(gs, func(a, b DeadGroup) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), b.Newest.Compare(a.Newest),
			cmp.Compare(a.Action, b.Action), cmp.Compare(a.Error, b.Error), cmp.Compare(a.Class, b.Class))
	})
}
