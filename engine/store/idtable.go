package store

// idTable is a set of 64-bit fingerprints, each with an expiry, in 16
// bytes a slot: the dedupe index of identities already in the db. It is
// extendible hashing over segments of linear probing: the fingerprint's
// top bits pick a segment through the directory, its low bits a slot. A
// segment that fills splits in two on its own, in place, so the table
// grows by one 16 KiB segment at a time and never holds two copies of
// itself, as a map does while it doubles.
type idTable struct {
	dir      []*segment // by the fingerprint's top depth bits
	depth    uint       // len(dir) == 1<<depth
	maxDepth uint       // past it a segment no longer splits (see put)
}

// segment is one open-addressing table. Its fingerprints share their top
// depth bits; 1<<(table depth - depth) directory entries point to it.
type segment struct {
	depth uint
	n     int    // slots in use
	slots []slot // segSlots, allocated on their own: exactly 16 KiB
}

type slot struct {
	fp  uint64 // 0: empty
	exp int64  // Unix ns
}

const (
	segBits  = 10
	segSlots = 1 << segBits
	segMask  = segSlots - 1
	// segMax is the load at which a segment splits: 13/16 keeps a miss,
	// the accept path of a new callback, within a few cache lines.
	segMax = segSlots * 13 / 16
	// maxDepth bounds the directory (8 MiB, room for hundreds of millions
	// of identities) against fingerprints that share their top bits,
	// which a random seed makes as good as impossible.
	maxDepth = 20
)

func newIDTable() *idTable {
	return &idTable{dir: []*segment{newSegment(0)}, maxDepth: maxDepth}
}

func newSegment(depth uint) *segment {
	return &segment{depth: depth, slots: make([]slot, segSlots)}
}

func (t *idTable) segment(fp uint64) *segment { return t.dir[fp>>(64-t.depth)] }

// get returns fp's expiry, expired or not.
func (t *idTable) get(fp uint64) (int64, bool) {
	s := t.segment(fp)
	if i, ok := s.find(fp); ok {
		return s.slots[i].exp, true
	}
	return 0, false
}

// put records fp with expiry exp; of two expiries for one fingerprint,
// the later is kept.
func (t *idTable) put(fp uint64, exp int64) {
	for {
		s := t.segment(fp)
		i, ok := s.find(fp)
		switch {
		case ok:
			s.slots[i].exp = max(s.slots[i].exp, exp)
			return
		case s.n < segMax, s.depth >= t.maxDepth && s.n < segSlots-1:
			s.slots[i] = slot{fp, exp}
			s.n++
			return
		case s.depth >= t.maxDepth:
			// Full and not to be split: the identity is forgotten, and a
			// retry of its callback would be accepted again, the safe side.
			// One slot stays empty so that every probe ends.
			return
		}
		t.split(s, fp)
	}
}

// split moves the fingerprints of s whose next top bit is set to a new
// segment; fp is one of those s holds or would hold.
func (t *idTable) split(s *segment, fp uint64) {
	if s.depth == t.depth {
		dir := make([]*segment, 2*len(t.dir))
		for i, x := range t.dir {
			dir[2*i], dir[2*i+1] = x, x
		}
		t.dir, t.depth = dir, t.depth+1
	}
	hi := newSegment(s.depth + 1)
	bit := uint64(1) << (63 - s.depth)
	s.filter(func(sl slot) bool { return sl.fp&bit != 0 }, func(sl slot) {
		i, _ := hi.find(sl.fp)
		hi.slots[i] = sl
		hi.n++
	})
	span := 1 << (t.depth - s.depth) // directory entries of s so far
	first := int(fp>>(64-s.depth)) * span
	s.depth++
	for i := first + span/2; i < first+span; i++ {
		t.dir[i] = hi
	}
}

// sweepSegment forgets the fingerprints expired at now of the segment at
// directory index i, and returns the index of the next segment (len(dir)
// after the last). An index taken before the directory doubled is still
// good: it only leads to segments swept already.
func (t *idTable) sweepSegment(i int, now int64) int {
	s := t.dir[i]
	s.filter(func(sl slot) bool { return sl.exp <= now }, func(slot) {})
	span := 1 << (t.depth - s.depth)
	return i&^(span-1) + span
}

// len is how many fingerprints the table holds.
func (t *idTable) len() int {
	n := 0
	for i := 0; i < len(t.dir); i += 1 << (t.depth - t.dir[i].depth) {
		n += t.dir[i].n
	}
	return n
}

// find returns fp's slot, or the empty slot where it would go.
func (s *segment) find(fp uint64) (int, bool) {
	for i := int(fp & segMask); ; i = (i + 1) & segMask {
		switch s.slots[i].fp {
		case fp:
			return i, true
		case 0:
			return i, false
		}
	}
}

// filter removes the slots drop selects, handing each to removed. A
// removal shifts the rest of its run back (no tombstones), and only onto
// positions the scan has yet to look at or looks at again.
func (s *segment) filter(drop func(slot) bool, removed func(slot)) {
	for i := 0; i < segSlots; {
		if sl := s.slots[i]; sl.fp != 0 && drop(sl) {
			s.remove(i)
			removed(sl)
			continue
		}
		i++
	}
}

// remove empties slot i, moving back the entries of its run that would no
// longer be found past the hole.
func (s *segment) remove(i int) {
	s.n--
	for j := i; ; {
		s.slots[i] = slot{}
		for {
			j = (j + 1) & segMask
			if s.slots[j].fp == 0 {
				return
			}
			home := int(s.slots[j].fp & segMask)
			if (j-home)&segMask >= (j-i)&segMask { // the hole is on its probe path
				break
			}
		}
		s.slots[i] = s.slots[j]
		i = j
	}
}
