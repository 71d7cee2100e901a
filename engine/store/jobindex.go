package store

import (
	"container/heap"
	"sync"
	"time"
)

// jobIndex is a Local store's index of pending jobs: which are due when,
// by action instance, and which are leased to whom. The jobs themselves
// are in the db; this holds a few words per job. One heap per action lets
// a claim take from the actions that have slots without stepping over the
// due jobs of those that have none.
type jobIndex struct {
	mu     sync.Mutex
	due    map[string]*dueHeap // by action instance
	leased map[string]*lease   // by job id
	held   map[string]int      // live leases by action instance
	wake   chan struct{}       // coalesced: jobs may be claimable sooner
}

type dueJob struct {
	at int64 // Unix ns
	id string
}

type lease struct {
	owner  string
	until  time.Time
	action string
	// finishing marks a lease whose Finish is being written: it does not
	// expire meanwhile.
	finishing bool
}

type dueHeap []dueJob

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].id < h[j].id
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueJob)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newJobIndex() *jobIndex {
	return &jobIndex{due: map[string]*dueHeap{}, leased: map[string]*lease{}, held: map[string]int{}, wake: make(chan struct{}, 1)}
}

// add makes a pending job claimable from at.
func (x *jobIndex) add(action, id string, at time.Time) {
	x.mu.Lock()
	x.push(action, id, at)
	x.mu.Unlock()
	x.signal()
}

func (x *jobIndex) push(action, id string, at time.Time) {
	h := x.due[action]
	if h == nil {
		h = &dueHeap{}
		x.due[action] = h
	}
	heap.Push(h, dueJob{at: at.UnixNano(), id: id})
}

func (x *jobIndex) signal() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// claim leases due jobs within c's limits and returns their ids, and
// when the next job comes due that the same claim could take.
func (x *jobIndex) claim(c Claim) (ids []string, next time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := c.Now.UnixNano()
	for id, l := range x.leased {
		if !l.finishing && !c.Now.Before(l.until) {
			x.unlease(id, l) // its owner is gone or too slow: claimable again
			x.push(l.action, id, c.Now)
		}
	}
	var nextNs int64
	for action, h := range x.due {
		limit, listed := c.Limits[action]
		if !listed {
			limit = c.Other
		}
		slots := limit - x.held[action]
		for h.Len() > 0 && slots > 0 && (*h)[0].at <= now {
			d := heap.Pop(h).(dueJob)
			x.leased[d.id] = &lease{owner: c.Owner, until: c.Now.Add(c.Lease), action: action}
			x.held[action]++
			ids = append(ids, d.id)
			slots--
		}
		if h.Len() == 0 {
			delete(x.due, action)
			continue
		}
		if at := (*h)[0].at; slots > 0 && (nextNs == 0 || at < nextNs) {
			nextNs = at
		}
	}
	for _, l := range x.leased {
		if at := l.until.UnixNano(); !l.finishing && (nextNs == 0 || at < nextNs) {
			nextNs = at
		}
	}
	if nextNs != 0 {
		next = time.Unix(0, nextNs)
	}
	return ids, next
}

// release ends leases a claim could not hand out (the job was not in the
// db), without making the jobs claimable again.
func (x *jobIndex) release(ids []string) {
	x.mu.Lock()
	for _, id := range ids {
		if l, ok := x.leased[id]; ok {
			x.unlease(id, l)
		}
	}
	x.mu.Unlock()
}

func (x *jobIndex) unlease(id string, l *lease) {
	delete(x.leased, id)
	if x.held[l.action]--; x.held[l.action] <= 0 {
		delete(x.held, l.action)
	}
}

// beginFinish returns owner's lease of id, kept from expiring while the
// finish is written; nil if owner does not hold it.
func (x *jobIndex) beginFinish(owner, id string) *lease {
	x.mu.Lock()
	defer x.mu.Unlock()
	l, ok := x.leased[id]
	if !ok || l.owner != owner || l.finishing {
		return nil
	}
	l.finishing = true
	return l
}

// endFinish ends the lease l of id. A job still pending becomes claimable
// at next; a failed write leaves the lease to expire, so that the job runs
// again from what the db holds.
func (x *jobIndex) endFinish(id string, l *lease, written, pending bool, next time.Time) {
	x.mu.Lock()
	if !written {
		l.finishing = false
		x.mu.Unlock()
		return
	}
	if x.leased[id] != l { // replayed and claimed anew meanwhile: that lease is not ours to end
		x.mu.Unlock()
		return
	}
	x.unlease(id, l)
	if pending {
		x.push(l.action, id, next)
	}
	x.mu.Unlock()
	x.signal() // a slot of its action is free, and it may be due again
}

// count is the number of pending jobs, leased or not.
func (x *jobIndex) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := len(x.leased)
	for _, h := range x.due {
		n += h.Len()
	}
	return n
}
