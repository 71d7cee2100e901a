package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor bounds waits for a condition that must happen; it only turns a
// hang into a failure, it never asserts speed.
const waitFor = 30 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// openT opens dir and closes the log when the test ends.
func openT(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	l, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// payload is record i of most tests; all have the same length, so segment
// layouts are easy to predict: a 20-byte frame, 10 per 200-byte segment.
func payload(i int) []byte { return fmt.Appendf(nil, "event-%06d", i) }

const frameLen = headerSize + 12

func mustAppend(t testing.TB, l *Log, rec []byte, wantSeq uint64) {
	t.Helper()
	seq, err := l.Append(context.Background(), rec)
	if err != nil {
		t.Fatalf("append %q: %v", rec, err)
	}
	if seq != wantSeq {
		t.Fatalf("append %q: seq %d, want %d", rec, seq, wantSeq)
	}
}

type entry struct {
	seq uint64
	rec string
}

func replayAll(t testing.TB, l *Log, after uint64) []entry {
	t.Helper()
	var got []entry
	err := l.Replay(after, func(seq uint64, rec []byte) error {
		got = append(got, entry{seq, string(rec)})
		return nil
	})
	if err != nil {
		t.Fatalf("replay after %d: %v", after, err)
	}
	return got
}

// entries is what replay must return for payload(i), i in [from, to], stored at seq i.
func entries(from, to int) []entry {
	var want []entry
	for i := from; i <= to; i++ {
		want = append(want, entry{uint64(i), string(payload(i))})
	}
	return want
}

func checkEntries(t *testing.T, got, want []entry) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("replay returned %d records %v\nwant %d records %v", len(got), got, len(want), want)
	}
}

// segments returns the first seqs named by the segment files in dir and their total size.
func segments(t *testing.T, dir string) (firsts []uint64, size int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if first, ok := parseSegName(e.Name()); ok {
			firsts = append(firsts, first)
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			size += info.Size()
		}
	}
	return firsts, size
}

// recordBytes returns the bytes of records the segment files in dir hold. It
// fails the test unless only zeros (preallocated space) follow the records of
// the last segment, and nothing follows those of the others.
func recordBytes(t *testing.T, dir string) int64 {
	t.Helper()
	firsts, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i, first := range firsts {
		path := segPath(dir, first)
		_, end, size, bad, err := scanFile(path)
		switch {
		case err != nil:
			t.Fatal(err)
		case bad != "":
			t.Fatalf("%s: %s at offset %d", path, bad, end)
		case end != size && i < len(firsts)-1:
			t.Errorf("%s: %d bytes of zeros after its records, but it is not the last segment", path, size-end)
		}
		total += end
	}
	return total
}

func TestRoundTripAcrossSegmentsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 100}
	l := openT(t, dir, o)
	for i := 1; i <= 30; i++ {
		mustAppend(t, l, payload(i), uint64(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if firsts, _ := segments(t, dir); !slices.Equal(firsts, []uint64{1, 6, 11, 16, 21, 26}) {
		t.Fatalf("segments %v, want 5 records each", firsts)
	}

	l = openT(t, dir, o)
	for i := 31; i <= 40; i++ {
		mustAppend(t, l, payload(i), uint64(i))
	}
	checkEntries(t, replayAll(t, l, 0), entries(1, 40))
	checkEntries(t, replayAll(t, l, 25), entries(26, 40))
	checkEntries(t, replayAll(t, l, 40), nil)

	// Every segment name is the seq of its first record.
	firsts, _ := segments(t, dir)
	for _, first := range firsts {
		var seen []uint64
		f, err := os.Open(segPath(dir, first))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		_, _, err = scan(f, st.Size(), f.Name(), func(p []byte) error {
			seen = append(seen, first+uint64(len(seen)))
			if want := payload(int(seen[len(seen)-1])); !bytes.Equal(p, want) {
				t.Errorf("%s: record %q, want %q", f.Name(), p, want)
			}
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, size := l.Size(), recordBytes(t, dir); got != size {
		t.Errorf("Size() = %d, files hold %d bytes of records", got, size)
	}

	stop := errors.New("stop")
	var n int
	err := l.Replay(0, func(uint64, []byte) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("replay with fn failing on the 3rd record: err %v after %d calls, want stop after 3", err, n)
	}
}

func TestTornTailOfLastSegmentIsTruncated(t *testing.T) {
	const records = 16 // segments 1 (records 1-10) and 11 (11-16)
	const lastFrame = frameLen
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string)
		keep    int   // records that survive
		dropped int64 // bytes recovery must cut
	}{
		{"garbage appended", appendBytes([]byte("\xab\xcd not a record")), records, 15},
		{"half a record appended", appendBytes(frame(payload(99))[:frameLen/2]), records, frameLen / 2},
		{"part of a header appended", appendBytes([]byte{0, 0, 1}), records, 3},
		{"garbage after zeros", appendBytes(append(make([]byte, 4096), 'x')), records, 4097},
		{"length over the limit", appendBytes([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5}), records, 9},
		{"last record cut short", cutBytes(10), records - 1, lastFrame - 10},
		{"checksum mismatch in the last record", flipByteFromEnd(1), records - 1, lastFrame},
		{"flipped length of the last record", flipByteFromEnd(lastFrame - 3), records - 1, lastFrame},
		{"whole segment garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte{0x5a}, 100), 0o600); err != nil {
				t.Fatal(err)
			}
		}, 10, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{SegmentBytes: 200}
			l := openT(t, dir, o)
			for i := 1; i <= records; i++ {
				mustAppend(t, l, payload(i), uint64(i))
			}
			l.Close()
			firsts, _ := segments(t, dir)
			if len(firsts) != 2 {
				t.Fatalf("segments %v, want 2", firsts)
			}
			last := segPath(dir, firsts[1])
			tc.damage(t, last)

			var logged bytes.Buffer
			o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
			l = openT(t, dir, o)
			checkEntries(t, replayAll(t, l, 0), entries(1, tc.keep))
			if want := fmt.Sprintf("bytes=%d", tc.dropped); !strings.Contains(logged.String(), want) ||
				!strings.Contains(logged.String(), filepath.Base(last)) {
				t.Errorf("recovery log %q does not name %s and %s", logged.String(), filepath.Base(last), want)
			}
			mustAppend(t, l, payload(tc.keep+1), uint64(tc.keep+1))
			l.Close()

			logged.Reset()
			l = openT(t, dir, o)
			if logged.Len() != 0 {
				t.Errorf("second recovery logged %q, want nothing (the tail was truncated durably)", logged.String())
			}
			checkEntries(t, replayAll(t, l, 0), entries(1, tc.keep+1))
		})
	}
}

// A crash leaves the active segment with its preallocated tail: recovery
// keeps it as it is, says nothing, and appends after the last record.
func TestPreallocatedTailSurvivesACrash(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{})
	for i := 1; i <= 5; i++ {
		mustAppend(t, l, payload(i), uint64(i))
	}
	path := segPath(dir, 1)
	if size := fileSize(t, path); runtime.GOOS == "linux" && size != allocStep {
		t.Errorf("active segment is %d bytes, want %d preallocated", size, allocStep)
	}
	// The files as a kill -9 leaves them: copied while the log is open.
	crashed := t.TempDir()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segPath(crashed, 1), data, 0o600); err != nil {
		t.Fatal(err)
	}

	var logged bytes.Buffer
	l = openT(t, crashed, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if logged.Len() != 0 {
		t.Errorf("recovery logged %q, want nothing: a zero tail is preallocated space", logged.String())
	}
	if size := fileSize(t, segPath(crashed, 1)); size != int64(len(data)) {
		t.Errorf("recovery changed the segment's size to %d, want %d kept", size, len(data))
	}
	mustAppend(t, l, payload(6), 6)
	checkEntries(t, replayAll(t, l, 0), entries(1, 6))
	if got := recordBytes(t, crashed); got != 6*frameLen {
		t.Errorf("segment holds %d bytes of records, want %d", got, 6*frameLen)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if size := fileSize(t, segPath(crashed, 1)); size != 6*frameLen {
		t.Errorf("after Close the segment is %d bytes, want its %d bytes of records", size, 6*frameLen)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func appendBytes(b []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

func cutBytes(n int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, st.Size()-n); err != nil {
			t.Fatal(err)
		}
	}
}

// flipByteFromEnd inverts the byte n bytes before the end of the file.
func flipByteFromEnd(n int64) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[int64(len(b))-n] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDamageBeforeTheLastSegmentFailsOpen(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string // parts of the error
	}{
		{"flipped payload byte in the first segment", func(t *testing.T, dir string) {
			path := segPath(dir, 1)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[2*frameLen+headerSize+3] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"00000000000000000001.wal", fmt.Sprintf("offset %d", 2*frameLen), "checksum mismatch"}},
		{"first segment cut short", func(t *testing.T, dir string) {
			cutBytes(5)(t, segPath(dir, 1))
		}, []string{"00000000000000000001.wal", fmt.Sprintf("offset %d", 9*frameLen), "truncated payload"}},
		{"middle segment missing", func(t *testing.T, dir string) {
			if err := os.Remove(segPath(dir, 11)); err != nil {
				t.Fatal(err)
			}
		}, []string{"00000000000000000021.wal", "starts at seq 21, want 11"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{SegmentBytes: 200, Logger: testLogger(t)}
			l := openT(t, dir, o)
			for i := 1; i <= 30; i++ {
				mustAppend(t, l, payload(i), uint64(i))
			}
			l.Close()
			if firsts, _ := segments(t, dir); !slices.Equal(firsts, []uint64{1, 11, 21}) {
				t.Fatalf("segments %v, want [1 11 21]", firsts)
			}
			tc.damage(t, dir)
			_, sizeBefore := segments(t, dir)

			l2, err := Open(dir, o)
			if err == nil {
				l2.Close()
				t.Fatal("Open succeeded on a journal damaged before its last segment")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, sizeAfter := segments(t, dir); sizeAfter != sizeBefore {
				t.Errorf("failed Open changed the files: %d bytes before, %d after", sizeBefore, sizeAfter)
			}
		})
	}
}

func TestReleaseDeletesOnlyWholeOldSegments(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 100}
	l := openT(t, dir, o)
	rec := func(i int) []byte { return fmt.Appendf(nil, "%042d", i) } // 50-byte frame: two per segment
	for i := 1; i <= 10; i++ {
		mustAppend(t, l, rec(i), uint64(i))
	}
	want := func(from, to int) []entry {
		var w []entry
		for i := from; i <= to; i++ {
			w = append(w, entry{uint64(i), string(rec(i))})
		}
		return w
	}
	steps := []struct {
		name      string
		upTo      uint64
		files     []uint64
		replayAll []entry
	}{
		{"nothing released", 0, []uint64{1, 3, 5, 7, 9}, want(1, 10)},
		{"half of the first segment", 1, []uint64{1, 3, 5, 7, 9}, want(1, 10)},
		{"first two segments", 4, []uint64{5, 7, 9}, want(5, 10)},
		{"one record into the third", 5, []uint64{5, 7, 9}, want(5, 10)},
		{"everything keeps the active segment", 1000, []uint64{9}, want(9, 10)},
	}
	for _, s := range steps {
		if err := l.Release(s.upTo); err != nil {
			t.Fatalf("%s: Release(%d): %v", s.name, s.upTo, err)
		}
		firsts, _ := segments(t, dir)
		if !slices.Equal(firsts, s.files) {
			t.Errorf("%s: after Release(%d) segments %v, want %v", s.name, s.upTo, firsts, s.files)
		}
		if got, size := l.Size(), recordBytes(t, dir); got != size {
			t.Errorf("%s: Size() = %d, files hold %d bytes of records", s.name, got, size)
		}
		checkEntries(t, replayAll(t, l, 0), s.replayAll)
	}
	checkEntries(t, replayAll(t, l, 9), want(10, 10))

	mustAppend(t, l, rec(11), 11)
	l.Close()
	l = openT(t, dir, o)
	checkEntries(t, replayAll(t, l, 0), want(9, 11))
	mustAppend(t, l, rec(12), 12)
}

func TestConcurrentAppendsAreDenseAndReplayExactlyOnce(t *testing.T) {
	const writers, each = 64, 200
	dir := t.TempDir()
	var mu sync.Mutex
	committed := 0
	o := Options{SegmentBytes: 64 << 10, OnCommit: func(n int, _ time.Duration) {
		mu.Lock()
		committed += n
		mu.Unlock()
	}}
	l := openT(t, dir, o)

	seqOf := make([][]uint64, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				seq, err := l.Append(context.Background(), fmt.Appendf(nil, "w%02d-%03d", w, i))
				if err != nil {
					errs <- err
					return
				}
				seqOf[w] = append(seqOf[w], seq)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const total = writers * each
	want := make(map[uint64]string, total)
	for w, seqs := range seqOf {
		for i, seq := range seqs {
			if seq < 1 || seq > total {
				t.Fatalf("seq %d outside 1..%d", seq, total)
			}
			if prev, dup := want[seq]; dup {
				t.Fatalf("seq %d handed out twice (%s and w%02d-%03d)", seq, prev, w, i)
			}
			want[seq] = fmt.Sprintf("w%02d-%03d", w, i)
		}
	}
	got := replayAll(t, l, 0)
	if len(got) != total {
		t.Fatalf("replay returned %d records, want %d", len(got), total)
	}
	for i, e := range got {
		if e.seq != uint64(i+1) || e.rec != want[e.seq] {
			t.Fatalf("replay record %d = %v, want seq %d %q", i, e, i+1, want[uint64(i+1)])
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if committed != total {
		t.Errorf("OnCommit counted %d records, want %d", committed, total)
	}
	if firsts, _ := segments(t, dir); len(firsts) < 2 {
		t.Errorf("segments %v: want rotation under concurrency", firsts)
	}
}

// faults makes the segment files of a Log fail on demand. Each fault fires once.
type faults struct {
	mu       sync.Mutex
	writeErr error         // next WriteAt writes half its bytes, then fails with this
	syncErr  error         // next Sync or Datasync fails with this, writing nothing
	allocErr error         // every Allocate grows the file as asked, then fails with this
	gate     chan struct{} // next Sync or Datasync signals entered, then waits until gate is closed
	entered  chan struct{}
}

type faultyFile struct {
	segmentFile
	fl *faults
}

func (f faultyFile) WriteAt(p []byte, off int64) (int, error) {
	f.fl.mu.Lock()
	err := f.fl.writeErr
	f.fl.writeErr = nil
	f.fl.mu.Unlock()
	if err != nil {
		n, _ := f.segmentFile.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	return f.segmentFile.WriteAt(p, off)
}

func (f faultyFile) Allocate(size int64) error {
	f.fl.mu.Lock()
	err := f.fl.allocErr
	f.fl.mu.Unlock()
	if aerr := f.segmentFile.Allocate(size); err == nil {
		return aerr
	}
	return err
}

func (f faultyFile) Sync() error {
	if err := f.fl.beforeSync(); err != nil {
		return err
	}
	return f.segmentFile.Sync()
}

func (f faultyFile) Datasync() error {
	if err := f.fl.beforeSync(); err != nil {
		return err
	}
	return f.segmentFile.Datasync()
}

// beforeSync fires the sync faults.
func (fl *faults) beforeSync() error {
	fl.mu.Lock()
	err, gate := fl.syncErr, fl.gate
	fl.syncErr, fl.gate = nil, nil
	fl.mu.Unlock()
	if gate != nil {
		fl.entered <- struct{}{}
		<-gate
	}
	return err
}

func openFaulty(t *testing.T, dir string, o Options, fl *faults) *Log {
	t.Helper()
	o.Logger = testLogger(t)
	l, err := open(dir, o, func(path string) (segmentFile, error) {
		f, err := openSegmentFile(path)
		if err != nil {
			return nil, err
		}
		return faultyFile{f, fl}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// holdNextSync makes the next commit's flush wait until the returned
// release is called, and returns once the committer is inside it.
func holdNextSync(fl *faults) (entered <-chan struct{}, release func()) {
	gate := make(chan struct{})
	in := make(chan struct{}, 1)
	fl.mu.Lock()
	fl.gate, fl.entered = gate, in
	fl.mu.Unlock()
	return in, func() { close(gate) }
}

func waitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for l.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d appends queued after %v, want %d", l.queued(), waitFor, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitBatchesWhatQueuedDuringAFlush(t *testing.T) {
	var mu sync.Mutex
	var batches []int
	fl := &faults{}
	l := openFaulty(t, t.TempDir(), Options{OnCommit: func(n int, _ time.Duration) {
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
	}}, fl)
	entered, release := holdNextSync(fl)

	const appenders = 64
	var wg sync.WaitGroup
	seqs := make([]uint64, appenders)
	errs := make([]error, appenders)
	start := func(i int) {
		wg.Go(func() { seqs[i], errs[i] = l.Append(context.Background(), payload(i)) })
	}
	start(0)
	<-entered // the first record is being fsynced alone
	for i := 1; i < appenders; i++ {
		start(i)
	}
	waitQueued(t, l, appenders-1)
	release()
	wg.Wait()
	if err := l.Close(); err != nil { // OnCommit runs after the acks; Close waits for it
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if want := []int{1, appenders - 1}; !slices.Equal(batches, want) {
		t.Errorf("commits carried %v records, want %v: everything queued during a flush goes in the next one", batches, want)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v, want 1..%d", seqs, appenders)
		}
	}
}

func TestStoreFailures(t *testing.T) {
	tests := []struct {
		name     string
		inject   func(*faults)
		want     error
		poisoned bool
		kept     int64    // segment bytes right after the failed append
		onDisk   []string // records found after a restart
	}{
		// The half-written batch is cut off again at once.
		{"write fails with ENOSPC", func(f *faults) { f.writeErr = syscall.ENOSPC }, syscall.ENOSPC, false, 9, []string{"a", "c"}},
		{"write fails with EIO", func(f *faults) { f.writeErr = syscall.EIO }, syscall.EIO, false, 9, []string{"a", "c"}},
		// The failed batch did reach the file here: a record whose Append
		// failed may come back after a restart (at least once).
		{"fsync fails", func(f *faults) { f.syncErr = syscall.EIO }, syscall.EIO, true, 18, []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fl := &faults{}
			l := openFaulty(t, dir, Options{}, fl)
			ctx := context.Background()
			mustAppend(t, l, []byte("a"), 1)
			tc.inject(fl)
			if seq, err := l.Append(ctx, []byte("b")); !errors.Is(err, tc.want) || seq != 0 {
				t.Fatalf("append during the fault: seq %d, err %v; want seq 0, err wrapping %v", seq, err, tc.want)
			}
			if size := recordBytes(t, dir); size != tc.kept {
				t.Errorf("after the failed append the segment holds %d bytes, want %d", size, tc.kept)
			}
			if tc.poisoned {
				// The fault is gone, but a later fsync proves nothing: keep failing with the first error.
				for _, rec := range []string{"c", "d"} {
					if _, err := l.Append(ctx, []byte(rec)); !errors.Is(err, tc.want) {
						t.Fatalf("append %q after a failed fsync: %v, want an error wrapping %v", rec, err, tc.want)
					}
				}
			} else {
				mustAppend(t, l, []byte("c"), 2) // the failed batch used no seq
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			l = openT(t, dir, Options{})
			var got []string
			for _, e := range replayAll(t, l, 0) {
				got = append(got, e.rec)
			}
			if !slices.Equal(got, tc.onDisk) {
				t.Errorf("after restart the journal holds %q, want %q", got, tc.onDisk)
			}
			size := recordBytes(t, dir)
			if want := int64(len(tc.onDisk) * (headerSize + 1)); size != want {
				t.Errorf("segment holds %d bytes, want %d (the half-written batch truncated away)", size, want)
			}
		})
	}
}

// A preallocation can fail after growing the file (ext4 out of space does);
// the segment is still cut to its records before the next one starts.
func TestFailedPreallocationIsCutOffWhenSealing(t *testing.T) {
	dir := t.TempDir()
	fl := &faults{allocErr: syscall.ENOSPC}
	l := openFaulty(t, dir, Options{SegmentBytes: 100}, fl)
	for i := 1; i <= 12; i++ {
		mustAppend(t, l, payload(i), uint64(i))
	}
	if firsts, _ := segments(t, dir); len(firsts) < 2 {
		t.Fatalf("segments %v: want a rotation", firsts)
	}
	if got := recordBytes(t, dir); got != l.Size() { // fails on a zero tail in a sealed segment
		t.Errorf("files hold %d bytes of records, Size() = %d", got, l.Size())
	}
	checkEntries(t, replayAll(t, l, 0), entries(1, 12))
}

func TestCancelledWhileQueuedIsNotWritten(t *testing.T) {
	fl := &faults{}
	l := openFaulty(t, t.TempDir(), Options{}, fl)
	entered, release := holdNextSync(fl)
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), []byte("first"))
		first <- err
	}()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, []byte("cancelled"))
		cancelled <- err
	}()
	waitQueued(t, l, 1)
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("append cancelled while queued: %v, want context.Canceled", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, []byte("dead ctx")); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled ctx: %v, want context.Canceled", err)
	}
	mustAppend(t, l, []byte("after"), 2)
	checkEntries(t, replayAll(t, l, 0), []entry{{1, "first"}, {2, "after"}})
}

func TestCloseCommitsQueuedAppends(t *testing.T) {
	dir := t.TempDir()
	fl := &faults{}
	l := openFaulty(t, dir, Options{}, fl)
	entered, release := holdNextSync(fl)

	const n = 10
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { seqs[i], errs[i] = l.Append(context.Background(), payload(i)) })
		if i == 0 {
			<-entered
		}
	}
	waitQueued(t, l, n-1)
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	deadline := time.Now().Add(waitFor)
	for !l.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("Close did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.Append(context.Background(), []byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("append while closing: %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d queued before Close: %v", i, err)
		}
	}
	if _, err := l.Append(context.Background(), []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("append after Close: %v, want ErrClosed", err)
	}
	if err := l.Replay(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("replay after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	l = openT(t, dir, Options{})
	if got := replayAll(t, l, 0); len(got) != n {
		t.Errorf("after restart %d records, want the %d queued before Close", len(got), n)
	}
}

func (l *Log) queued() int {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return len(l.queue)
}

func TestRefusedRecordsUseNoSeq(t *testing.T) {
	l := openT(t, t.TempDir(), Options{})
	ctx := context.Background()
	if _, err := l.Append(ctx, nil); err == nil {
		t.Error("empty record accepted")
	}
	if _, err := l.Append(ctx, make([]byte, MaxRecord+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("record of MaxRecord+1 bytes: %v, want ErrTooLarge", err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), MaxRecord/16)
	mustAppend(t, l, big, 1)
	mustAppend(t, l, []byte("small"), 2)
	got := replayAll(t, l, 0)
	if len(got) != 2 || got[0].rec != string(big) || got[1].rec != "small" {
		t.Errorf("replay did not return the MaxRecord-sized record and the next one intact")
	}
}

func TestSecondOpenOfTheSameDirFails(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, dir, Options{})
	mustAppend(t, l, []byte("a"), 1)
	if l2, err := Open(dir, Options{Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "in use") {
		if err == nil {
			l2.Close()
		}
		t.Fatalf("second Open: %v, want an in-use error", err)
	}
	l.Close()
	l = openT(t, dir, Options{})
	mustAppend(t, l, []byte("b"), 2)
}

func FuzzRecover(f *testing.F) {
	var valid []byte
	for i := 1; i <= 3; i++ {
		valid = append(valid, frame(payload(i))...)
	}
	flipped := slices.Clone(valid)
	flipped[len(flipped)-2] ^= 0x10
	f.Add([]byte{})
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(append(slices.Clone(valid), make([]byte, 32)...))
	f.Add(flipped)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(segPath(dir, 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return // refusing is allowed; panicking or inventing records is not
		}
		defer l.Close()
		var kept []byte
		n := uint64(0)
		err = l.Replay(0, func(seq uint64, rec []byte) error {
			n++
			if seq != n {
				t.Fatalf("replay seq %d, want %d", seq, n)
			}
			kept = append(kept, frame(rec)...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, kept) {
			t.Fatalf("recovered records are not a prefix of the segment")
		}
		if size := recordBytes(t, dir); size != int64(len(kept)) || l.Size() != size {
			t.Fatalf("after recovery the segment holds %d bytes of records (Size %d), want the %d-byte recovered prefix", size, l.Size(), len(kept))
		}
		mustAppend(t, l, []byte("next"), n+1)
	})
}
