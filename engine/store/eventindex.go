package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// Local's event listing. Events are keyed by id (a ULID, so time order);
// what a filter selects on has an index of its own, each keyed so that
// its members come in id order, and a listing intersects the indexes its
// filter names, newest first, by leapfrogging: each index in turn seeks
// the newest member not newer than the current candidate, until all agree.
// A page therefore costs about its rows and the seeks between them, not
// the events stored.
var (
	// id → summary (see putSummary): what became of the event since.
	bucketSummary = []byte("event-summary")
	// tag, value length, value, id → nothing: the events of one source,
	// kind, matched rule, outcome, or retried (tagDuplicate).
	bucketEventIndex = []byte("event-index")
	// hour (4 bytes), stream, id, id length (1 byte) → nothing: a stream
	// prefix is a range within each hour, read whole and sorted.
	bucketStreamIndex = []byte("events-by-hour-stream")
	keyIndexed        = []byte("events-indexed")  // in meta: the indexes cover every event
	keyIndexing       = []byte("events-indexing") // in meta: the last event indexed so far, while indexing
)

const (
	tagSource    = 's'
	tagKind      = 'k'
	tagRule      = 'r'
	tagOutcome   = 'o'
	tagDuplicate = 'u'
)

// streamSlot is the time slot of the stream index: a prefix's members of
// one slot are read and sorted together, and a slot without them costs
// two seeks.
const streamSlot = time.Hour

// indexPrefix is the key prefix of an exact index's members for value.
func indexPrefix(tag byte, value string) []byte {
	k := binary.AppendUvarint([]byte{tag}, uint64(len(value)))
	return append(k, value...)
}

// slotOf is the stream-index slot of an event id: its ULID's hour. Ids
// that are not ULIDs share slot 0.
func slotOf(id []byte) uint32 {
	u, err := ulid.ParseStrict(string(id))
	if err != nil {
		return 0
	}
	return uint32(u.Time() / uint64(streamSlot/time.Millisecond))
}

// streamKey is an event's key in the stream index; a stream is kept to
// its first maxIndexKey bytes (bbolt's keys are bounded).
func streamKey(stream, id string) []byte {
	if len(stream) > maxIndexKey {
		stream = stream[:maxIndexKey]
	}
	k := binary.BigEndian.AppendUint32(nil, slotOf([]byte(id)))
	k = append(append(k, stream...), id...)
	return append(k, byte(len(id)))
}

// splitStreamKey returns the stream and id of a stream-index key.
func splitStreamKey(k []byte) (stream, id []byte) {
	if len(k) < 5 || int(k[len(k)-1]) > len(k)-5 {
		return nil, nil
	}
	n := int(k[len(k)-1])
	return k[4 : len(k)-1-n], k[len(k)-1-n : len(k)-1]
}

// summary is an event's Summary as the summary bucket holds it: five
// big-endian numbers, the last the Unix ns of the last duplicate.
func putSummary(b *bolt.Bucket, id []byte, s Summary) error {
	v := make([]byte, 0, 24)
	for _, n := range []int{s.Deliveries.Pending, s.Deliveries.Delivered, s.Deliveries.Dead, s.Duplicates} {
		v = binary.BigEndian.AppendUint32(v, uint32(n))
	}
	var last int64
	if !s.LastDuplicate.IsZero() {
		last = s.LastDuplicate.UnixNano()
	}
	return b.Put(id, binary.BigEndian.AppendUint64(v, uint64(last)))
}

func readSummary(b *bolt.Bucket, id []byte) (Summary, bool) {
	v := b.Get(id)
	if len(v) != 24 {
		return Summary{}, false
	}
	n := func(i int) int { return int(binary.BigEndian.Uint32(v[4*i:])) }
	s := Summary{Deliveries: Deliveries{Pending: n(0), Delivered: n(1), Dead: n(2)}, Duplicates: n(3)}
	if last := int64(binary.BigEndian.Uint64(v[16:])); last != 0 {
		s.LastDuplicate = time.Unix(0, last).UTC()
	}
	s.Outcome = s.Deliveries.Outcome()
	return s, true
}

// withSummary fills rec's Summary from the bucket.
func withSummary(tx *bolt.Tx, rec *EventRecord) {
	sum, ok := readSummary(tx.Bucket(bucketSummary), []byte(rec.Event.ID))
	if !ok {
		sum.Outcome = OutcomeNone
	}
	rec.Summary = sum
}

// indexKeys are an event's keys in the exact index, but its outcome's.
func indexKeys(rec *EventRecord) [][]byte {
	id := rec.Event.ID
	keys := [][]byte{
		append(indexPrefix(tagSource, rec.Event.Source), id...),
		append(indexPrefix(tagKind, rec.Event.Kind), id...),
	}
	for i, r := range rec.Matched {
		if !slices.Contains(rec.Matched[:i], r) {
			keys = append(keys, append(indexPrefix(tagRule, r), id...))
		}
	}
	return keys
}

// indexEvent records a newly evaluated event in the listing's indexes,
// with its first summary: the duplicates counted while it waited for
// evaluation and the deliveries its evaluation made.
func indexEvent(tx *bolt.Tx, rec *EventRecord, sum Summary) error {
	ix := tx.Bucket(bucketEventIndex)
	id := rec.Event.ID
	keys := append(indexKeys(rec), append(indexPrefix(tagOutcome, sum.Deliveries.Outcome()), id...))
	if sum.Duplicates > 0 {
		keys = append(keys, append(indexPrefix(tagDuplicate, ""), id...))
	}
	for _, k := range keys {
		if err := ix.Put(k, nil); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketStreamIndex).Put(streamKey(rec.Event.Stream, id), nil); err != nil {
		return err
	}
	return putSummary(tx.Bucket(bucketSummary), []byte(id), sum)
}

// unindexEvent removes a pruned event from the indexes.
func unindexEvent(tx *bolt.Tx, rec *EventRecord) error {
	ix, sums := tx.Bucket(bucketEventIndex), tx.Bucket(bucketSummary)
	id := rec.Event.ID
	sum, _ := readSummary(sums, []byte(id))
	keys := append(indexKeys(rec), append(indexPrefix(tagOutcome, sum.Deliveries.Outcome()), id...),
		append(indexPrefix(tagDuplicate, ""), id...))
	for _, k := range keys {
		if err := ix.Delete(k); err != nil {
			return err
		}
	}
	return errors.Join(tx.Bucket(bucketStreamIndex).Delete(streamKey(rec.Event.Stream, id)), sums.Delete([]byte(id)))
}

// changeSummary rewrites an event's summary with change applied, moving
// it between outcomes. An event without one (pruned) is left alone.
func changeSummary(tx *bolt.Tx, id string, change func(*Summary)) (bool, error) {
	sums := tx.Bucket(bucketSummary)
	sum, ok := readSummary(sums, []byte(id))
	if !ok {
		return false, nil
	}
	before, dups := sum.Deliveries.Outcome(), sum.Duplicates
	change(&sum)
	ix := tx.Bucket(bucketEventIndex)
	if after := sum.Deliveries.Outcome(); after != before {
		if err := errors.Join(ix.Delete(append(indexPrefix(tagOutcome, before), id...)),
			ix.Put(append(indexPrefix(tagOutcome, after), id...), nil)); err != nil {
			return true, err
		}
	}
	if dups == 0 && sum.Duplicates > 0 {
		if err := ix.Put(append(indexPrefix(tagDuplicate, ""), id...), nil); err != nil {
			return true, err
		}
	}
	return true, putSummary(sums, []byte(id), sum)
}

// count adds d to the count of jobs in state.
func (d *Deliveries) count(state string, n int) {
	switch state {
	case Pending:
		d.Pending += n
	case Delivered:
		d.Delivered += n
	case Dead:
		d.Dead += n
	}
}

// earlyDuplicates holds the duplicates of events still waiting for
// evaluation, which have no summary yet: the commit that gives them one
// takes these. bbolt runs one write transaction at a time, and both sides
// touch this only inside theirs, so no count falls between them.
type earlyDuplicates struct {
	mu sync.Mutex
	m  map[string]Summary
}

func (e *earlyDuplicates) add(id string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.m[id]
	s.Duplicates++
	if at.After(s.LastDuplicate) {
		s.LastDuplicate = at
	}
	e.m[id] = s
}

// take removes and returns what is held for id.
func (e *earlyDuplicates) take(id string) Summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.m[id]
	delete(e.m, id)
	return s
}

// forget drops what is held for the events gone says are gone (pruned
// before they had a summary).
func (e *earlyDuplicates) forget(gone func(id string) bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.m {
		if gone(id) {
			delete(e.m, id)
		}
	}
}

// restore puts back what a failed commit took.
func (e *earlyDuplicates) restore(taken map[string]Summary) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, s := range taken {
		cur := e.m[id]
		cur.Duplicates += s.Duplicates
		if s.LastDuplicate.After(cur.LastDuplicate) {
			cur.LastDuplicate = s.LastDuplicate
		}
		e.m[id] = cur
	}
}

// duplicate is a retry to count on the event it duplicates.
type duplicate struct {
	id string
	at time.Time
}

// putDuplicates counts retries on their events: on the summary of an
// evaluated one, else aside for the commit of one still waiting (even
// still being written: a retry that waited for its write is answered
// before the event reaches the inbox).
func putDuplicates(tx *bolt.Tx, dups []duplicate, early *earlyDuplicates) error {
	for _, d := range dups {
		found, err := changeSummary(tx, d.id, func(s *Summary) {
			s.Duplicates++
			if d.at.After(s.LastDuplicate) {
				s.LastDuplicate = d.at.UTC()
			}
		})
		if err != nil {
			return fmt.Errorf("count a duplicate of %s: %w", d.id, err)
		}
		if !found {
			early.add(d.id, d.at.UTC())
		}
	}
	return nil
}

// indexAllEvents builds the listing's indexes over the events of a store
// written before they existed, once, in transactions of indexBatch events
// (one for all would hold every page it dirties in memory); keyIndexing
// says how far it got, should the process stop midway.
func indexAllEvents(db *bolt.DB) error {
	for done := false; !done; {
		err := db.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if meta.Get(keyIndexed) != nil {
				done = true
				return nil
			}
			jobs := tx.Bucket(bucketJobs)
			c := tx.Bucket(bucketEvents).Cursor()
			k, v := c.First()
			if after := meta.Get(keyIndexing); after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			var recs []*EventRecord
			for ; k != nil && len(recs) < indexBatch; k, v = c.Next() {
				var rec EventRecord
				if err := json.Unmarshal(v, &rec); err != nil || rec.Event == nil {
					return fmt.Errorf("event %s: not an event record: %v", k, err)
				}
				recs = append(recs, &rec)
			}
			for _, rec := range recs {
				var d Deliveries
				prefix := []byte(rec.Event.ID + ".")
				jc := jobs.Cursor()
				for k, v := jc.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = jc.Next() {
					var j Job
					if err := json.Unmarshal(v, &j); err != nil {
						return fmt.Errorf("job %s: %w", k, err)
					}
					d.count(j.State, 1)
				}
				if err := indexEvent(tx, rec, Summary{Deliveries: d}); err != nil {
					return err
				}
			}
			if len(recs) < indexBatch {
				done = true
				return errors.Join(meta.Put(keyIndexed, []byte{1}), meta.Delete(keyIndexing))
			}
			return meta.Put(keyIndexing, []byte(recs[len(recs)-1].Event.ID))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// indexBatch is how many events one transaction of indexAllEvents indexes.
var indexBatch = 10_000 // a variable for the test of a store indexed in several

// A member set of the listing, newest first. seek returns the newest
// member older than cand (or not newer, with incl); with cand nil, the
// newest of all; nil when there is none.
type members interface {
	seek(cand []byte, incl bool) []byte
}

// indexRange is the members of an index whose keys are prefix + id.
type indexRange struct {
	c      *bolt.Cursor
	prefix []byte
}

func (r *indexRange) seek(cand []byte, incl bool) []byte {
	var k []byte
	if cand == nil {
		if _, hi := keyRange(r.prefix); hi != nil {
			if k, _ = r.c.Seek(hi); k == nil {
				k, _ = r.c.Last()
			} else {
				k, _ = r.c.Prev()
			}
		} else {
			k, _ = r.c.Last()
		}
	} else {
		target := append(append(make([]byte, 0, len(r.prefix)+len(cand)), r.prefix...), cand...)
		k, _ = r.c.Seek(target)
		switch {
		case k == nil:
			k, _ = r.c.Last()
		case incl && bytes.Equal(k, target):
		default:
			k, _ = r.c.Prev()
		}
	}
	if k == nil || !bytes.HasPrefix(k, r.prefix) {
		return nil
	}
	return k[len(r.prefix):]
}

// keyRange is the keys that start with prefix: [lo, hi), hi nil for no
// upper bound.
func keyRange(prefix []byte) (lo, hi []byte) {
	hi = bytes.Clone(prefix)
	for i := len(hi) - 1; i >= 0; i-- {
		if hi[i] < 0xff {
			hi[i]++
			return prefix, hi[:i+1]
		}
	}
	return prefix, nil
}

// streamPrefix is the events whose stream starts with a prefix, read a
// slot at a time from the stream index.
type streamPrefix struct {
	c      *bolt.Cursor
	prefix []byte // as keys hold it: at most maxIndexKey bytes
	full   string
	stream func(id []byte) string // the stream of a long one, to check the rest of full
	slot   uint32
	loaded bool
	ids    [][]byte // the slot's members, newest first
}

func (s *streamPrefix) load(slot uint32) {
	s.slot, s.loaded, s.ids = slot, true, s.ids[:0]
	start := binary.BigEndian.AppendUint32(nil, slot)
	from := append(bytes.Clone(start), s.prefix...)
	for k, _ := s.c.Seek(from); k != nil && bytes.HasPrefix(k, from); k, _ = s.c.Next() {
		stream, id := splitStreamKey(k)
		if id == nil || !bytes.HasPrefix(stream, s.prefix) {
			continue
		}
		if len(s.full) > len(s.prefix) && !strings.HasPrefix(s.stream(id), s.full) {
			continue
		}
		s.ids = append(s.ids, id)
	}
	slices.SortFunc(s.ids, func(a, b []byte) int { return bytes.Compare(b, a) })
}

func (s *streamPrefix) seek(cand []byte, incl bool) []byte {
	var slot uint32
	if cand == nil {
		k, _ := s.c.Last()
		if k == nil {
			return nil
		}
		slot = binary.BigEndian.Uint32(k)
	} else {
		slot = slotOf(cand)
	}
	for {
		if !s.loaded || s.slot != slot {
			s.load(slot)
		}
		i := 0
		if cand != nil {
			i, _ = slices.BinarySearchFunc(s.ids, cand, func(id, c []byte) int {
				if d := bytes.Compare(id, c); d > 0 || (d == 0 && !incl) {
					return -1 // newer than wanted: before it in the slot's order
				}
				return 1
			})
		}
		if i < len(s.ids) {
			return s.ids[i]
		}
		// The next older slot with any events: every member is older.
		k, _ := s.c.Seek(binary.BigEndian.AppendUint32(nil, slot))
		if k == nil {
			k, _ = s.c.Last()
		} else {
			k, _ = s.c.Prev()
		}
		if k == nil || binary.BigEndian.Uint32(k) >= slot {
			return nil
		}
		slot, cand = binary.BigEndian.Uint32(k), nil
	}
}

// FirstIDAt is the smallest event id (ULID) of time t: the ids of events
// accepted at or after t are not less, those before are.
func FirstIDAt(t time.Time) string {
	ms := max(t.UnixMilli(), 0)
	var u ulid.ULID
	_ = u.SetTime(uint64(min(ms, int64(ulid.MaxTime())))) // in range: clamped
	return u.String()
}

// listEvents lists the ids of the events that meet f, newest first, up
// to f.Limit.
func listEvents(tx *bolt.Tx, f EventFilter) [][]byte {
	var sets []members
	ix := tx.Bucket(bucketEventIndex)
	exact := func(tag byte, v string) {
		sets = append(sets, &indexRange{c: ix.Cursor(), prefix: indexPrefix(tag, v)})
	}
	if f.Source != "" {
		exact(tagSource, f.Source)
	}
	if f.Kind != "" {
		exact(tagKind, f.Kind)
	}
	if f.Rule != "" {
		exact(tagRule, f.Rule)
	}
	switch f.Outcome {
	case "":
	case OutcomeDuplicate:
		exact(tagDuplicate, "")
	default:
		exact(tagOutcome, f.Outcome)
	}
	if f.Stream != "" {
		p := f.Stream
		if len(p) > maxIndexKey {
			p = p[:maxIndexKey]
		}
		events := tx.Bucket(bucketEvents)
		sets = append(sets, &streamPrefix{c: tx.Bucket(bucketStreamIndex).Cursor(), prefix: []byte(p), full: f.Stream,
			stream: func(id []byte) string {
				var rec struct {
					Event struct {
						Stream string `json:"stream"`
					} `json:"event"`
				}
				_ = json.Unmarshal(events.Get(id), &rec) // unreadable: no stream, left out
				return rec.Event.Stream
			}})
	}
	if len(sets) == 0 {
		sets = append(sets, &indexRange{c: tx.Bucket(bucketEvents).Cursor()})
	}
	// The newest candidate allowed, exclusive.
	var cand []byte
	if f.Before != "" {
		cand = []byte(f.Before)
	}
	if !f.To.IsZero() {
		if to := []byte(FirstIDAt(f.To)); cand == nil || bytes.Compare(to, cand) < 0 {
			cand = to
		}
	}
	var from []byte
	if !f.From.IsZero() {
		from = []byte(FirstIDAt(f.From))
	}
	var out [][]byte
	incl := false
	for len(out) < f.Limit {
		// Leapfrog until every set holds cand.
		agreed := 0
		for i := 0; agreed < len(sets); i = (i + 1) % len(sets) {
			x := sets[i].seek(cand, incl)
			if x == nil || (from != nil && bytes.Compare(x, from) < 0) {
				return out
			}
			if incl && bytes.Equal(x, cand) {
				agreed++
				continue
			}
			cand, incl, agreed = x, true, 1
		}
		out = append(out, bytes.Clone(cand))
		incl = false
	}
	return out
}
