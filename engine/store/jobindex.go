package store

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
)

// jobIndex is a Local store's index of pending jobs: which are due when,
// by action instance, and which are leased to whom. The due times live in
// the db's due bucket, written with the jobs; the index keeps in memory
// only a window of the earliest due jobs of each action (paged in from the
// bucket as they are claimed) and the leases, so a backlog of a million
// deliveries costs little memory and nothing at start. One window per
// action lets a claim take from the actions that have slots without
// stepping over the due jobs of those that have none.
type jobIndex struct {
	db      *bolt.DB
	newer   *unapplied // job states journaled and not yet in the due bucket
	mu      sync.Mutex
	windows map[string]*window // by action instance, for every action with pending jobs
	leased  map[string]*lease  // by job id
	held    map[string]int     // live leases by action instance
	pending int                // pending jobs, leased or not
	wake    chan struct{}      // coalesced: jobs may be claimable sooner
	// fresh holds new jobs as their commit made them, with their events,
	// until claimed: most are claimed soon after, and reading each back
	// from the db would cost two decodes a delivery.
	fresh map[string]Claimed
}

// freshMax bounds the new jobs held with their events: beyond it (a
// backlog) they are read from the db when claimed.
const freshMax = 4096

// windowSize bounds the due jobs of one action held in memory.
const windowSize = 1024

// window holds the earliest due, unleased pending jobs of one action: every
// such job ordered at or before horizon is in it (all of them, if
// complete).
type window struct {
	due      dueHeap
	in       map[string]bool
	horizon  dueJob
	complete bool
	loaded   bool
}

type dueJob struct {
	at int64 // Unix ns
	id string
}

func (a dueJob) before(b dueJob) bool { return a.at < b.at || a.at == b.at && a.id < b.id }

type lease struct {
	owner  string
	until  time.Time
	action string
	at     int64 // the job's due time, to put it back if the lease expires
	// finishing marks a lease whose Finish is being written: it does not
	// expire meanwhile.
	finishing bool
	// replayed is the due time of the job's replay (a dead letter made
	// pending again) added while the lease still held it: claimable once
	// the lease ends.
	replayed *dueJob
}

type dueHeap []dueJob

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].before(h[j]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueJob)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// dueKey is a job's key in the due bucket: action, 0, due time (8 bytes
// big-endian Unix ns), job id. Keys of an action sort by due time.
func dueKey(action string, at time.Time, id string) []byte {
	k := make([]byte, 0, len(action)+1+8+len(id))
	k = append(append(k, action...), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(max(at.UnixNano(), 0)))
	return append(k, id...)
}

// splitDueKey is dueKey's inverse.
func splitDueKey(k []byte) (action string, d dueJob, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(k) < i+9 {
		return "", dueJob{}, false
	}
	return string(k[:i]), dueJob{at: int64(binary.BigEndian.Uint64(k[i+1 : i+9])), id: string(k[i+9:])}, true
}

func newJobIndex(db *bolt.DB, newer *unapplied) *jobIndex {
	return &jobIndex{db: db, newer: newer, windows: map[string]*window{}, leased: map[string]*lease{}, held: map[string]int{},
		wake: make(chan struct{}, 1), fresh: map[string]Claimed{}}
}

// open finds the actions with pending jobs and counts those jobs, without
// reading them.
func (x *jobIndex) open(tx *bolt.Tx) {
	x.pending = readCount(tx, keyPending)
	c := tx.Bucket(bucketDue).Cursor()
	for k, _ := c.First(); k != nil; {
		action, _, ok := splitDueKey(k)
		if !ok {
			k, _ = c.Next()
			continue
		}
		x.windows[action] = &window{}
		k, _ = c.Seek(append([]byte(action), 1)) // the next action
	}
}

// add makes new pending jobs claimable from their due times. Those whose
// events are in events (by id) are held for their claim, within freshMax.
func (x *jobIndex) add(jobs []*Job, events map[string]*event.Event) {
	if len(jobs) == 0 {
		return
	}
	x.mu.Lock()
	for _, j := range jobs {
		x.pending++
		if ev := events[j.EventID]; ev != nil && len(x.fresh) < freshMax {
			c := *j // the runner appends attempts to its own copy
			x.fresh[j.ID] = Claimed{Job: &c, Event: ev}
		}
		d := dueJob{at: j.NextAt.UnixNano(), id: j.ID}
		if l := x.leased[j.ID]; l != nil {
			// Replayed while the finish that made it a dead letter still
			// holds its lease: push would skip it as being run.
			l.replayed = &d
			continue
		}
		x.push(j.Action, d)
	}
	x.mu.Unlock()
	x.signal()
}

// push puts a pending, unleased job into its action's window if the window
// covers its due time; otherwise it is found in the due bucket when the
// window is paged in again. The caller holds mu.
func (x *jobIndex) push(action string, d dueJob) {
	w := x.windows[action]
	if w == nil {
		w = &window{loaded: true, complete: true, in: map[string]bool{}}
		x.windows[action] = w
	}
	if !w.loaded || w.in[d.id] || x.leased[d.id] != nil || !w.complete && w.horizon.before(d) {
		return // paged in already, being run, or beyond the window: found in the bucket later
	}
	w.in[d.id] = true
	heap.Push(&w.due, d)
}

func (x *jobIndex) signal() { signal(x.wake) }

// page fills an action's window from the due bucket and from the job
// states not yet applied to it, which supersede the bucket's. The caller
// holds mu.
func (x *jobIndex) page(action string, w *window) error {
	w.due, w.in, w.complete, w.loaded = nil, map[string]bool{}, true, true
	prefix := append([]byte(action), 0)
	// Read before the bucket: a state applied since is in the bucket's
	// view then.
	newer := x.newer.dueOf(action)
	err := x.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			_, d, ok := splitDueKey(k)
			if _, waiting := newer[d.id]; !ok || waiting || x.leased[d.id] != nil || w.in[d.id] {
				continue
			}
			if len(w.due) == windowSize {
				w.complete = false
				return nil
			}
			w.due = append(w.due, d)
			w.in[d.id] = true
			w.horizon = d
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, d := range newer {
		if d == nil || x.leased[id] != nil || w.in[id] || !w.complete && w.horizon.before(*d) {
			continue // finished, being run, or beyond the window
		}
		w.due = append(w.due, *d)
		w.in[id] = true
	}
	heap.Init(&w.due)
	return nil
}

// claim leases due jobs within c's limits and returns their ids, and
// when the next job comes due that the same claim could take.
func (x *jobIndex) claim(c Claim) (ids []string, next time.Time, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	now := c.Now.UnixNano()
	for id, l := range x.leased {
		if !l.finishing && !c.Now.Before(l.until) {
			x.unlease(id, l) // its owner is gone or too slow: claimable again
			x.push(l.action, dueJob{at: l.at, id: id})
		}
	}
	var nextNs int64
	for action, w := range x.windows {
		limit, listed := c.Limits[action]
		if !listed {
			limit = c.Other
		}
		slots := limit - x.held[action]
		if slots <= 0 {
			continue
		}
		for slots > 0 {
			if len(w.due) == 0 && (!w.loaded || !w.complete) {
				if err := x.page(action, w); err != nil {
					return ids, next, err
				}
			}
			if len(w.due) == 0 || w.due[0].at > now {
				break
			}
			d := heap.Pop(&w.due).(dueJob)
			delete(w.in, d.id)
			if x.leased[d.id] != nil {
				continue // leased since it was paged in: it is being run
			}
			x.leased[d.id] = &lease{owner: c.Owner, until: c.Now.Add(c.Lease), action: action, at: d.at}
			x.held[action]++
			ids = append(ids, d.id)
			slots--
		}
		switch {
		case len(w.due) > 0 && slots > 0 && (nextNs == 0 || w.due[0].at < nextNs):
			nextNs = w.due[0].at
		case len(w.due) == 0 && w.complete && x.held[action] == 0:
			delete(x.windows, action) // nothing pending: found again by push
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
	return ids, next, nil
}

// takeFresh hands out the new jobs among ids held since their commit:
// each once, since its first attempt makes the db's copy the one to read.
func (x *jobIndex) takeFresh(ids []string) map[string]Claimed {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.fresh) == 0 {
		return nil
	}
	got := map[string]Claimed{}
	for _, id := range ids {
		if c, ok := x.fresh[id]; ok {
			got[id] = c
			delete(x.fresh, id)
		}
	}
	return got
}

// release ends leases a claim could not hand out (the job could not be
// read), without making the jobs claimable again.
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
	if l.replayed != nil {
		x.push(l.action, *l.replayed)
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
		x.push(l.action, dueJob{at: next.UnixNano(), id: id})
	} else {
		x.pending--
	}
	x.mu.Unlock()
	x.signal() // a slot of its action is free, and it may be due again
}

// count is the number of pending jobs, leased or not.
func (x *jobIndex) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.pending
}
