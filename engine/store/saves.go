package store

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// saves groups the counts of duplicates from many requests into few bbolt
// commits, with no timer: a save that finds no commit in progress commits
// at once, and the saves that queue during a commit share the next one.
// bbolt's own Batch waits out a fixed delay unless its batch fills, which a
// few concurrent requests never do.
type saves struct {
	db      *bolt.DB
	early   *earlyDuplicates
	mu      sync.Mutex
	queue   []*save
	leading bool // a goroutine is committing; queued saves are its to take
}

type save struct {
	dups []duplicate // retries to count on their first copies
	done chan error  // buffered
}

// put commits duplicates, in a commit shared with whatever else is
// queued.
func (s *saves) put(dups []duplicate) error {
	sv := &save{dups: dups, done: make(chan error, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, sv)
	if s.leading {
		s.mu.Unlock()
		return <-sv.done
	}
	s.leading = true
	s.mu.Unlock()
	s.commitQueued()
	return <-sv.done
}

// commitQueued commits everything queued in one transaction. If more
// queued meanwhile, a new goroutine leads the next commit, so no caller
// waits for other callers' saves beyond its own commit.
func (s *saves) commitQueued() {
	s.mu.Lock()
	batch := s.queue
	s.queue = nil
	s.mu.Unlock()
	err := s.update(batch...)
	if err != nil && len(batch) > 1 {
		// One bad save must not fail the others: commit each alone, as
		// bbolt's Batch does.
		for _, sv := range batch {
			sv.done <- s.update(sv)
		}
	} else {
		for _, sv := range batch {
			sv.done <- err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		s.leading = false
		return
	}
	go s.commitQueued()
}

// update commits the saves in one transaction. A panic is an error, as in
// bbolt's Batch: the goroutine committing may not be the one that asked.
func (s *saves) update(batch ...*save) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic counting duplicates: %v", p)
		}
	}()
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, sv := range batch {
			if err := putDuplicates(tx, sv.dups, s.early); err != nil {
				return err
			}
		}
		return nil
	})
}
