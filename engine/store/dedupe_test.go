package store

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/livehook/livehook/engine/event"
)

// Retries that arrive while the first copy is being written wait for its
// outcome: told its id once it is written, or one of them takes over the
// claim when it failed.
func TestDedupeRetriesWaitForTheFirstWrite(t *testing.T) {
	now := time.Unix(1714564803, 0)
	for _, written := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) { retriesWaitForTheFirstWrite(t, now, written) })
	}
}

func retriesWaitForTheFirstWrite(t *testing.T, now time.Time, written bool) {
	d := newDedupe(func(string, int64) (string, bool) { return "", false })
	first, _, dup, err := d.claim(context.Background(), "k", "first", now, now.Add(time.Hour))
	if err != nil || dup || first == nil {
		t.Fatalf("first claim: %v, dup %v", err, dup)
	}
	const retries = 5
	type outcome struct {
		mine *claim
		id   string
		dup  bool
	}
	got := make(chan outcome, retries)
	var wg sync.WaitGroup
	for range retries {
		wg.Go(func() {
			mine, id, dup, err := d.claim(context.Background(), "k", "retry", now, now.Add(time.Hour))
			if err != nil {
				t.Error(err)
			}
			if mine != nil {
				d.settle("k", mine, true) // the retry that took over writes its copy
			}
			got <- outcome{mine, id, dup}
		})
	}
	synctest.Wait() // every retry now waits on the first copy's claim
	d.settle("k", first, written)
	wg.Wait()
	close(got)
	takers, dups := 0, 0
	for o := range got {
		switch {
		case o.mine != nil:
			takers++
		case o.dup && o.id == map[bool]string{true: "first", false: "retry"}[written]:
			dups++
		default:
			t.Errorf("written=%v: a retry got %+v", written, o)
		}
	}
	if want := map[bool]int{true: 0, false: 1}[written]; takers != want || dups != retries-want {
		t.Errorf("written=%v: %d retries took the claim and %d were told a duplicate; want %d and %d", written, takers, dups, want, retries-want)
	}
	// Once its event is in the db, the identity is a fingerprint and an
	// expiry, not a claim with a channel.
	winner := map[bool]string{true: "first", false: "retry"}[written]
	d.committed([]*inflight{{accepted: Accepted{Event: &event.Event{ID: winner}, DedupeKey: "k"}, expires: now.Add(time.Hour)}})
	d.mu.Lock()
	if len(d.claims) != 0 || d.stored.len() != 1 {
		t.Errorf("written=%v: %d claims still held, %d identities stored; want none and 1", written, len(d.claims), d.stored.len())
	}
	d.mu.Unlock()
}

// A retry of an identity in the db is answered with the id the db holds
// for its key and expiry; a key whose fingerprint is another's is new.
func TestDedupeHitIsConfirmedByTheDB(t *testing.T) {
	type entry struct {
		key string
		exp int64
	}
	db := map[entry]string{} // the dedupe bucket
	d := newDedupe(func(key string, exp int64) (string, bool) { id, ok := db[entry{key, exp}]; return id, ok })
	now := time.Unix(1714564803, 0)
	accept := func(key, id string) {
		t.Helper()
		mine, first, dup, err := d.claim(context.Background(), key, id, now, now.Add(time.Hour))
		if err != nil || dup || mine == nil {
			t.Fatalf("claim of %s: %q dup=%v err=%v; want it claimed as new", key, first, dup, err)
		}
		d.settle(key, mine, true)
		db[entry{key, expiryNs(now.Add(time.Hour))}] = id
		d.committed([]*inflight{{accepted: Accepted{Event: &event.Event{ID: id}, DedupeKey: key}, expires: now.Add(time.Hour)}})
	}
	accept("key-a", "first")
	// As if "key-b" had key-a's fingerprint.
	d.stored.put(fingerprint(maphash.String(d.seed, "key-b")), expiryNs(now.Add(time.Hour)))
	accept("key-b", "second")
	for key, want := range map[string]string{"key-a": "first", "key-b": "second"} {
		if _, id, dup, _ := d.claim(context.Background(), key, "third", now.Add(time.Minute), now.Add(time.Hour)); !dup || id != want {
			t.Errorf("a retry of %s: %q dup=%v, want a duplicate of %s", key, id, dup, want)
		}
	}
}

// BenchmarkDedupeHeap measures the Go heap a day of remembered callbacks
// takes: 1,000,000 identities inside the window, accepted and committed in
// batches as the store does, with the peak while the index grows (the live
// heap after a collection every 50,000).
//
//	go test -run '^$' -bench DedupeHeap -benchtime 1x ./engine/store/
func BenchmarkDedupeHeap(b *testing.B) {
	const n, batch, every = 1_000_000, 200, 50_000
	var perKey, peak float64
	for range b.N {
		live := func() float64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return float64(m.HeapAlloc)
		}
		before := live()
		d := newDedupe(func(string, int64) (string, bool) { return "", false })
		now := time.Now()
		exp := now.Add(24 * time.Hour)
		var fs []*inflight
		for i := range n {
			key := fmt.Sprintf("file\x00play.example.com\x00live\x00room%d\x00record/live/room%d/%d.flv", i%5000, i%5000, i)
			id := ulid.Make().String()
			c, _, dup, err := d.claim(context.Background(), key, id, now, exp)
			if err != nil || dup {
				b.Fatalf("claim %d: dup=%v %v", i, dup, err)
			}
			d.settle(key, c, true)
			fs = append(fs, &inflight{accepted: Accepted{Event: &event.Event{ID: id}, DedupeKey: key}, expires: exp})
			if len(fs) == batch {
				d.committed(fs)
				fs = fs[:0]
			}
			if (i+1)%every == 0 {
				peak = max(peak, live()-before)
			}
		}
		perKey = (live() - before) / n
		runtime.KeepAlive(d)
	}
	b.ReportMetric(perKey, "heap_bytes/identity")
	b.ReportMetric(perKey*n/(1<<20), "heap_MiB/1M")
	b.ReportMetric(peak/(1<<20), "peak_heap_MiB")
}

// BenchmarkDedupeRestore measures what rebuilding the dedupe index adds to
// opening a store: one whose dedupe bucket holds 1,000,000 identities
// inside their window, against an empty one.
//
//	go test -run '^$' -bench DedupeRestore -benchtime 3x ./engine/store/
func BenchmarkDedupeRestore(b *testing.B) {
	const n = 1_000_000
	full, empty := b.TempDir(), b.TempDir()
	for _, dir := range []string{full, empty} {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	db, err := bolt.Open(filepath.Join(full, "livehook.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	exp := time.Now().Add(24 * time.Hour)
	const perTx = 100_000
	for i := 0; i < n; i += perTx {
		err := db.Update(func(tx *bolt.Tx) error {
			dd := tx.Bucket(bucketDedupe)
			dd.FillPercent = appendOnlyFill
			for j := i; j < i+perTx; j++ {
				key := fmt.Sprintf("file\x00play.example.com\x00live\x00room%d\x00record/live/room%d/%d.flv", j%5000, j%5000, j)
				if err := dd.Put(expiryKey(exp.Add(time.Duration(j)*time.Microsecond), key), []byte(ulid.Make().String())); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
	cpu := func() time.Duration { // of the whole process: the collector's work counts
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var fullMs, emptyMs, fullCPU float64
	for range b.N {
		for _, o := range []struct {
			dir string
			ms  *float64
		}{{full, &fullMs}, {empty, &emptyMs}} {
			start, startCPU := time.Now(), cpu()
			s, err := Open(o.dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			*o.ms += float64(time.Since(start).Microseconds()) / 1000
			if o.dir == full {
				fullCPU += float64((cpu() - startCPU).Microseconds()) / 1000
			}
			if o.dir == full && s.dedupe.stored.len() != n {
				b.Fatalf("restored %d identities, want %d", s.dedupe.stored.len(), n)
			}
			s.Close()
		}
	}
	b.ReportMetric(fullMs/float64(b.N), "open_1M_ms")
	b.ReportMetric(emptyMs/float64(b.N), "open_empty_ms")
	b.ReportMetric(fullCPU/float64(b.N), "open_1M_cpu_ms")
}

// commitTaken evaluates and commits every event waiting in s.
func commitTaken(t *testing.T, s *Local) {
	t.Helper()
	var evals []*Evaluation
	for _, a := range taken(t, s) {
		evals = append(evals, &Evaluation{EventID: a.Event.ID})
	}
	if err := s.Commit(t.Context(), evals); err != nil {
		t.Fatal(err)
	}
}

// The store's answers against a plain map of key → first id and expiry,
// over accepts, commits and reopens, with windows ending along the way.
func TestDedupeMatchesAMap(t *testing.T) {
	type first struct {
		id  string
		exp time.Time
	}
	dir := t.TempDir()
	s := openLocal(t, dir)
	model := map[string]first{}
	r := rand.New(rand.NewPCG(3, 4))
	now := base
	for i := range 300 {
		switch op := r.IntN(20); {
		case op < 3:
			commitTaken(t, s)
		case op == 3:
			s.Close()
			s = openLocal(t, dir)
		default:
			now = now.Add(time.Duration(r.IntN(120)) * time.Second)
			key, ttl := fmt.Sprint("k", r.IntN(15)), []time.Duration{time.Minute, 5 * time.Minute, time.Hour}[r.IntN(3)]
			ev := eventNo(i)
			ev.ReceivedAt = now
			got, err := s.Accept(t.Context(), &Incoming{Event: ev, DedupeKey: key, DedupeTTL: ttl})
			if err != nil {
				t.Fatal(err)
			}
			want, dup := model[key]
			dup = dup && now.Before(want.exp)
			if !dup {
				want = first{ev.ID, now.Add(ttl)}
				model[key] = want
			}
			if got.Duplicate != dup || got.ID != want.id {
				t.Fatalf("op %d: accept of %s at %s: %+v; want duplicate=%v of %s", i, key, now.Sub(base), got, dup, want.id)
			}
		}
	}
}

// A key whose fingerprint and expiry are another identity's is not a
// duplicate: the hit is confirmed against the dedupe bucket, in the db and
// after a reopen.
func TestDedupeFingerprintCollisionIsNotADuplicate(t *testing.T) {
	dir := t.TempDir()
	s := openLocal(t, dir)
	a, b := eventNo(1), eventNo(2)
	for _, ev := range []*event.Event{a, b} {
		ev.ReceivedAt = base
	}
	if got, err := s.Accept(t.Context(), &Incoming{Event: a, DedupeKey: "key-a", DedupeTTL: time.Hour}); err != nil || got.Duplicate {
		t.Fatalf("accept of key-a: %+v, %v", got, err)
	}
	commitTaken(t, s)
	// As if key-b's fingerprint were key-a's: a stored identity with it and
	// key-a's expiry.
	s.dedupe.restore(func(yield func([]byte, int64) bool) { yield([]byte("key-b"), expiryNs(base.Add(time.Hour))) })
	if got, err := s.Accept(t.Context(), &Incoming{Event: b, DedupeKey: "key-b", DedupeTTL: time.Hour}); err != nil || got.Duplicate || got.ID != b.ID {
		t.Fatalf("accept of key-b: %+v, %v; want it new", got, err)
	}
	commitTaken(t, s)
	for round := range 2 {
		for key, want := range map[string]string{"key-a": a.ID, "key-b": b.ID} {
			retry := eventNo(3 + round)
			retry.ReceivedAt = base.Add(time.Minute)
			if got, err := s.Accept(t.Context(), &Incoming{Event: retry, DedupeKey: key, DedupeTTL: time.Hour}); err != nil || !got.Duplicate || got.ID != want {
				t.Errorf("round %d: retry of %s: %+v, %v; want a duplicate of %s", round, key, got, err, want)
			}
		}
		s.Close()
		s = openLocal(t, dir)
	}
}
