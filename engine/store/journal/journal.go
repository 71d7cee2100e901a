// Package journal is livehook's write-ahead log. Append returns only once the
// record is on stable storage (fsync), so intake answers Aliyun with 200
// only for callbacks that survive a crash or power loss.
//
// # Group commit
//
// An Append that finds no commit in progress writes its record itself, on
// its own goroutine: a lone client pays one write and one fdatasync and no
// hand-off to another goroutine. Appends that arrive during a commit queue
// up; when it ends, the committer goroutine takes everything queued (at most
// 1024 records or about 4 MiB per write), writes it with one write and one
// fdatasync, acknowledges every record, and repeats until the queue is
// empty. Before taking a batch, whoever commits yields once to the
// goroutines ready to run, so requests about to append join it (commitNext
// bounds what that costs when other goroutines keep the CPU busy). There is
// no timer: an idle server yields to nobody, and under load the batch grows
// with the queue. On a 2-core VM where a flush costs as much CPU as it takes
// time, fewer and larger flushes are what keep durable intake near the HTTP
// ceiling (spec/performance.md section 2).
//
// # Preallocation
//
// Segments are allocated ahead of their records, 8 MiB at a time, so that a
// commit overwrites space the file already has: fdatasync then flushes the
// data alone, not the file's size, which measured about a third faster than
// appending with fsync on this machine kind (docs/design.md). The unwritten
// tail reads as zeros; recovery knows a zero tail for what it is, a full
// segment is cut to its records before the next one starts, and Close trims
// the active one.
//
// # Format
//
// The journal is a directory of segment files, each named after the sequence
// number of its first record ("00000000000000000001.wal", zero-padded so the
// names sort). A record is framed as a 4-byte big-endian payload length, the
// 4-byte CRC-32C (Castagnoli) of the payload, then the payload. Sequence
// numbers are not stored: a record's seq is its segment's first seq plus its
// index, so they are dense, start at 1 and keep increasing across restarts.
// Empty records are refused, so a zero-filled tail (preallocated space, or
// what some file systems show after a crash) can never read as records. A
// new segment is started once the active one reaches Options.SegmentBytes;
// Release deletes old ones.
// dir/LOCK is flocked so two processes cannot share a journal.
//
// # Failure semantics
//
//   - Write fails (ENOSPC, EIO, short write): every Append of that batch
//     returns the error, no sequence number is used, and the segment is
//     truncated back to the batch's start so the next batch can try again.
//     If that truncate fails, the log is poisoned as below.
//   - fsync fails (of the segment, or of the directory after a new
//     segment): the log is poisoned, and that batch's and every later Append
//     return an error wrapping the first fsync error. After a failed fsync
//     the kernel may have dropped the dirty pages and marked them clean
//     (PostgreSQL's "fsyncgate"), so a later fsync that succeeds proves
//     nothing. The operator restarts; Open re-reads what is really on disk.
//   - ctx is cancelled while the record waits: Append returns ctx.Err().
//     A record still queued when the committer reaches it is dropped; one
//     already being written may still be committed. Callers treat the error
//     as "not accepted".
//   - Preallocation fails (a full disk, a file system without fallocate):
//     the write appends instead, and the commit pays for the size flush.
//
// So every Append that returned nil survives, and a record whose Append
// failed may still reappear after a restart (poisoned or cancelled batches,
// and a failed write whose truncation a crash undid):
// delivery is at least once, and consumers dedupe by event ID.
//
// # Recovery
//
// Open scans every segment. A tail of zeros after the last whole record is
// preallocated space and is kept. Any other torn or corrupt tail of the last
// segment (a crash in the middle of a write, which was never acknowledged)
// is truncated after the last whole record and logged with the number of
// bytes dropped.
// A bad record in any other segment, or a gap between segments, is an error
// naming the file and offset: those bytes were fsynced, so it is damage, not
// a crash artefact, and Open refuses to guess.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"
)

const (
	// MaxRecord is the largest payload Append takes.
	MaxRecord = 16 << 20
	// DefaultSegmentBytes is the segment size used when Options.SegmentBytes is zero.
	DefaultSegmentBytes = 64 << 20

	maxBatchRecords = 1024
	maxBatchBytes   = 4 << 20

	// allocStep is how far ahead of its records a segment is allocated.
	allocStep = 8 << 20
)

var (
	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("journal: closed")
	// ErrTooLarge is returned by Append for payloads over MaxRecord.
	ErrTooLarge = fmt.Errorf("journal: record larger than %d bytes", MaxRecord)
)

// Options tunes Open.
type Options struct {
	SegmentBytes int64 // start a new segment once the active one holds this many bytes; default 64 MiB
	// OnCommit, if set, is called by the committer after each group commit
	// with the number of records and the write+fsync latency (metrics). It
	// runs on the commit path, so it must be quick.
	OnCommit func(records int, d time.Duration)
	Logger   *slog.Logger // nil = slog.Default(); recovery truncations are logged here
}

// Log is an open journal. Its methods are safe for concurrent use.
type Log struct {
	dir     string
	opts    Options
	openSeg func(path string) (segmentFile, error)
	lock    *os.File

	qmu     sync.Mutex
	queue   []*request // appends waiting for the commit in progress to end
	leading bool       // a commit is in progress (by a caller or the committer); false means queue is empty
	idle    sync.Cond  // on qmu: signalled when leading turns false
	closed  bool
	kick    chan struct{} // hands a non-empty queue to the committer; closed by Close
	done    chan struct{} // closed when the committer has exited

	releaseMu sync.Mutex // serializes Release

	mu   sync.Mutex // guards segs
	segs []segment  // every segment, ascending; the last is the active one

	// Owned by whoever is leading (by Open before any Append, by Close after the last).
	f      segmentFile // the active segment
	path   string      // its file name
	next   uint64      // seq of the next record
	size   int64       // committed bytes in f
	alloc  int64       // bytes f has on disk: size plus its zero-filled, preallocated tail
	poison error
	buf    []byte
	// The last write+flush, and what yielding has cost (see commitNext).
	flushCost, yieldCost time.Duration
}

type segment struct {
	first uint64
	size  int64 // committed bytes
}

type request struct {
	ctx   context.Context
	frame []byte
	done  chan result // buffered: the committer never waits for a caller that gave up
}

type result struct {
	seq uint64
	err error
}

// Open opens the journal in dir, creating it if needed, recovers it (see the
// package comment) and starts the committer.
func Open(dir string, o Options) (*Log, error) {
	return open(dir, o, openSegmentFile)
}

// open is Open with the way the active segment is opened replaceable, so
// tests can make writes and fsyncs fail.
func open(dir string, o Options, openSeg func(string) (segmentFile, error)) (*Log, error) {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:     dir,
		opts:    o,
		openSeg: openSeg,
		lock:    lock,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	l.idle.L = &l.qmu
	if err := l.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

// recover scans the segments, checks they are contiguous, truncates a bad
// tail of the last one and opens it as the active segment.
func (l *Log) recover() error {
	firsts, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(firsts) == 0 {
		return l.create(1)
	}
	var expect uint64 // first seq the next segment must have
	var count uint64
	var end, size int64
	var bad string // why the bytes after end are not records; "" if they are none or zeros
	for i, first := range firsts {
		path := segPath(l.dir, first)
		if i > 0 && first != expect {
			return fmt.Errorf("journal: %s starts at seq %d, want %d: a segment is missing or overlaps", path, first, expect)
		}
		count, end, size, bad, err = scanFile(path)
		if err != nil {
			return err
		}
		if bad != "" && i < len(firsts)-1 {
			return fmt.Errorf("journal: %s: corrupt record at offset %d (%s, %d bytes from there to the end) in a segment that is not the last; refusing to truncate fsynced data", path, end, bad, size-end)
		}
		l.segs = append(l.segs, segment{first: first, size: end})
		expect = first + count
	}
	last := firsts[len(firsts)-1]
	path := segPath(l.dir, last)
	f, err := l.openSeg(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if bad != "" {
		if err := truncate(f, path, end); err != nil {
			f.Close()
			return err
		}
		l.opts.Logger.Warn("journal: truncated a torn or corrupt tail of the last segment",
			"file", path, "offset", end, "bytes", size-end, "reason", bad)
		size = end
	}
	l.f, l.path, l.next, l.size, l.alloc = f, path, last+count, end, size
	return nil
}

// scanFile counts the intact records at the start of a segment file of size
// bytes; see scan for end and bad. A tail of zeros is preallocated space,
// not damage, so bad is "" for it.
func scanFile(path string) (count uint64, end, size int64, bad string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, "", fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, 0, "", fmt.Errorf("journal: %w", err)
	}
	end, bad, err = scan(f, st.Size(), path, func([]byte) error { count++; return nil })
	if err == nil && bad != "" {
		var zeros bool
		if zeros, err = zeroFrom(f, end, st.Size(), path); zeros {
			bad = ""
		}
	}
	return count, end, st.Size(), bad, err
}

// truncate cuts a torn tail off the last segment, durably.
func truncate(f segmentFile, path string, end int64) error {
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("journal: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: fsync %s: %w", path, err)
	}
	return nil
}

// create starts a new, empty segment whose first record will be seq first and
// makes its directory entry durable.
func (l *Log) create(first uint64) error {
	path := segPath(l.dir, first)
	f, err := l.openSeg(path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return l.poisonWith(fmt.Errorf("fsync directory %s: %w", l.dir, err))
	}
	if l.f != nil {
		_ = l.f.Close() // every byte of it was fsynced by its last commit, so a close error loses nothing
	}
	l.f, l.path, l.next, l.size, l.alloc = f, path, first, 0, 0
	l.mu.Lock()
	l.segs = append(l.segs, segment{first: first})
	l.mu.Unlock()
	return nil
}

func (l *Log) poisonWith(err error) error {
	l.poison = fmt.Errorf("journal: unusable: what is on disk is uncertain, restart to recover: %w", err)
	return l.poison
}

// Append stores rec and returns its sequence number once it is durable.
// rec is copied, so the caller may reuse it as soon as Append returns.
func (l *Log) Append(ctx context.Context, rec []byte) (seq uint64, err error) {
	switch {
	case len(rec) == 0:
		return 0, errors.New("journal: empty record")
	case len(rec) > MaxRecord:
		return 0, ErrTooLarge
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Framing (the CRC) happens here, on the callers' goroutines, in parallel.
	r := &request{ctx: ctx, frame: frame(rec), done: make(chan result, 1)}
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return 0, ErrClosed
	}
	l.queue = append(l.queue, r)
	if !l.leading {
		// Nothing in progress: commit here.
		l.leading = true
		l.qmu.Unlock()
		func() {
			defer l.endLead() // even if commit panics, or later appends would wait for good
			l.commitNext()    // r is first in the queue, so in this batch
		}()
		res := <-r.done
		return res.seq, res.err
	}
	l.qmu.Unlock()
	select {
	case res := <-r.done:
		return res.seq, res.err
	case <-ctx.Done():
		select {
		case res := <-r.done: // finished at the same moment: report the truth
			return res.seq, res.err
		default:
			return 0, ctx.Err()
		}
	}
}

// endLead ends a caller's commit: what queued since goes to the
// committer, so the caller returns without waiting for other records.
func (l *Log) endLead() {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if len(l.queue) == 0 {
		l.leading = false
		l.idle.Broadcast()
		return
	}
	l.kick <- struct{}{} // never blocks: only the leader kicks, and the committer drains before the next lead
}

// commitLoop is the committer: handed a queue, it commits everything
// queued, a batch per write+fdatasync, until the queue is empty. It exits
// when Close closes kick.
func (l *Log) commitLoop() {
	defer close(l.done)
	for range l.kick {
		for l.commitNext() {
		}
	}
}

// commitNext commits the next batch from the queue; with the queue empty
// it ends the lead and reports false.
//
// It first lets the goroutines that are ready to run go ahead: those about
// to append join the batch, so under load one flush carries more records.
// With nothing else to run the yield costs nothing, and there is no timer.
// But goroutines that keep the CPU busy can make a yield last a scheduler
// time slice each (10 ms): a yield that took longer than a flush is not
// repeated until its cost, less one flush per batch since, is paid off, so
// on average yields add at most about one flush per batch.
func (l *Log) commitNext() bool {
	if l.yieldCost <= l.flushCost {
		start := time.Now()
		runtime.Gosched()
		l.yieldCost = time.Since(start)
	} else {
		l.yieldCost -= l.flushCost
	}
	l.qmu.Lock()
	batch := l.takeBatch()
	if len(batch) == 0 {
		l.leading = false
		l.idle.Broadcast()
		l.qmu.Unlock()
		return false
	}
	l.qmu.Unlock()
	l.commit(batch)
	return true
}

// takeBatch removes the next batch from the queue. qmu must be held.
func (l *Log) takeBatch() []*request {
	n, bytes := 0, 0
	for n < len(l.queue) && n < maxBatchRecords && bytes < maxBatchBytes {
		bytes += len(l.queue[n].frame)
		n++
	}
	batch := slices.Clone(l.queue[:n])
	clear(l.queue[:n]) // let the frames be collected once written
	l.queue = l.queue[n:]
	if len(l.queue) == 0 {
		l.queue = l.queue[:0:0] // do not pin a large backing array while idle
	}
	return batch
}

func (l *Log) commit(batch []*request) {
	defer func() {
		if p := recover(); p != nil {
			// A bug, but the batch's other callers must not wait for good.
			for _, r := range batch {
				select {
				case r.done <- result{err: fmt.Errorf("journal: commit failed: %v", p)}:
				default: // already answered
				}
			}
			panic(p)
		}
	}()
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err} // its caller has gone; do not write what nobody will ack
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	start := time.Now()
	if err := l.write(live); err != nil {
		for _, r := range live {
			r.done <- result{err: err}
		}
		return
	}
	d := time.Since(start)
	l.flushCost = d
	first := l.next
	l.next += uint64(len(live))
	l.mu.Lock()
	l.segs[len(l.segs)-1].size = l.size
	l.mu.Unlock()
	for i, r := range live {
		r.done <- result{seq: first + uint64(i)}
	}
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(len(live), d)
	}
}

// write makes the batch durable at the end of the active segment, starting a
// new segment first if the active one is full.
func (l *Log) write(batch []*request) error {
	if l.poison != nil {
		return l.poison
	}
	if l.size >= l.opts.SegmentBytes {
		if err := l.seal(); err != nil {
			return err
		}
		if err := l.create(l.next); err != nil {
			return err
		}
	}
	buf := batch[0].frame
	if len(batch) > 1 {
		buf = l.buf[:0]
		for _, r := range batch {
			buf = append(buf, r.frame...)
		}
		if cap(buf) <= maxBatchBytes { // keep the usual buffer, not a giant one
			l.buf = buf
		}
	}
	end := l.size + int64(len(buf))
	if end > l.alloc {
		// Best effort: without it the write appends, and the commit
		// also flushes the new size.
		if err := l.f.Allocate((end + allocStep - 1) / allocStep * allocStep); err == nil {
			l.alloc = (end + allocStep - 1) / allocStep * allocStep
		}
	}
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		werr := fmt.Errorf("journal: write %s: %w", l.path, err)
		if terr := l.f.Truncate(l.size); terr != nil {
			// The tail now holds part of a batch nobody was told about; a
			// later rotation would bury it in the middle of the journal.
			return l.poisonWith(fmt.Errorf("%w; truncate after it: %w", werr, terr))
		}
		l.alloc = l.size
		return werr
	}
	l.alloc = max(l.alloc, end)
	if err := l.f.Datasync(); err != nil {
		return l.poisonWith(fmt.Errorf("fdatasync %s: %w", l.path, err))
	}
	l.size = end
	return nil
}

// seal cuts the preallocated tail off the active segment, durably, so that
// only the last segment ever has one. It truncates even when nothing was
// allocated: a fallocate that failed may still have grown the file.
func (l *Log) seal() error {
	if err := truncate(l.f, l.path, l.size); err != nil {
		return l.poisonWith(err)
	}
	l.alloc = l.size
	return nil
}

// Replay calls fn for every record with seq > after, in order, and stops at
// fn's first error, which it returns. It sees the records committed when it
// starts. rec belongs to fn. fn may call Append and Release.
func (l *Log) Replay(after uint64, fn func(seq uint64, rec []byte) error) error {
	type opened struct {
		seg  segment
		file *os.File
	}
	if l.isClosed() {
		return ErrClosed
	}
	// Open the files up front: a concurrent Release may unlink them, and an
	// open file stays readable after that.
	var files []opened
	defer func() {
		for _, o := range files {
			o.file.Close()
		}
	}()
	l.mu.Lock()
	for i, s := range l.segs {
		if i+1 < len(l.segs) && l.segs[i+1].first-1 <= after {
			continue // every record in it is <= after
		}
		f, err := os.Open(segPath(l.dir, s.first))
		if err != nil {
			l.mu.Unlock()
			return fmt.Errorf("journal: %w", err)
		}
		files = append(files, opened{s, f})
	}
	l.mu.Unlock()

	for _, o := range files {
		seq := o.seg.first
		path := o.file.Name()
		end, bad, err := scan(o.file, o.seg.size, path, func(payload []byte) error {
			defer func() { seq++ }()
			if seq <= after {
				return nil
			}
			return fn(seq, slices.Clone(payload))
		})
		if err != nil {
			return err
		}
		if bad != "" { // committed bytes changed under us
			return fmt.Errorf("journal: %s: corrupt record at offset %d (%s)", path, end, bad)
		}
	}
	return nil
}

// Release says records <= upTo are no longer needed: it deletes every
// segment, except the active one, whose records are all <= upTo.
func (l *Log) Release(upTo uint64) error {
	l.releaseMu.Lock()
	defer l.releaseMu.Unlock()
	if l.isClosed() {
		return ErrClosed
	}
	l.mu.Lock()
	var victims []uint64
	for i := 0; i+1 < len(l.segs) && l.segs[i+1].first-1 <= upTo; i++ {
		victims = append(victims, l.segs[i].first)
	}
	l.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	// Oldest first, so an interrupted Release leaves a contiguous journal.
	var err error
	removed := 0
	for _, first := range victims {
		if err = os.Remove(segPath(l.dir, first)); err != nil && !errors.Is(err, os.ErrNotExist) {
			break
		}
		err = nil
		removed++
	}
	l.mu.Lock()
	l.segs = slices.Delete(l.segs, 0, removed) // only Release removes, and it holds releaseMu
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("journal: release: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("journal: release: fsync directory %s: %w", l.dir, err)
	}
	return nil
}

// Size returns the bytes committed across all segments.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

func (l *Log) isClosed() bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.closed
}

// Close commits every Append already queued, trims the active segment's
// preallocated tail, then closes the files. Later calls return ErrClosed; a
// second Close returns nil.
func (l *Log) Close() error {
	l.qmu.Lock()
	if l.closed {
		l.qmu.Unlock()
		return nil
	}
	l.closed = true
	for l.leading {
		l.idle.Wait()
	}
	close(l.kick)
	l.qmu.Unlock()
	<-l.done
	var err error
	if l.poison == nil { // a poisoned log leaves the files as they are for Open to judge
		err = l.seal()
	}
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: close: %w", cerr)
	}
	if lerr := l.lock.Close(); err == nil && lerr != nil {
		err = fmt.Errorf("journal: close: %w", lerr)
	}
	return err
}
