package store

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// checkTable compares t with model (fingerprint → expiry): every
// fingerprint found with its expiry, none more, and each segment's count
// true.
func checkTable(t *testing.T, tb *idTable, model map[uint64]int64) {
	t.Helper()
	for fp, exp := range model {
		if got, ok := tb.get(fp); !ok || got != exp {
			t.Fatalf("get(%#x) = %d, %v; want %d", fp, got, ok, exp)
		}
	}
	if n := tb.len(); n != len(model) {
		t.Fatalf("the table holds %d fingerprints, want %d", n, len(model))
	}
	for i := 0; i < len(tb.dir); i += 1 << (tb.depth - tb.dir[i].depth) {
		s, used := tb.dir[i], 0
		for _, sl := range s.slots {
			if sl.fp != 0 {
				used++
				if _, ok := model[sl.fp]; !ok {
					t.Fatalf("segment %d holds %#x, which was never put or was swept", i, sl.fp)
				}
				if s.depth > 0 && sl.fp>>(64-s.depth) != uint64(i)>>(tb.depth-s.depth) {
					t.Fatalf("segment %d (depth %d) holds %#x, which belongs elsewhere", i, s.depth, sl.fp)
				}
			}
		}
		if used != s.n {
			t.Fatalf("segment %d counts %d slots, holds %d", i, s.n, used)
		}
	}
}

// fingerprints draws fingerprints the ways the table must cope with:
// random, crowding one home slot (long runs, wrapping at a segment's end),
// and sharing their top bits (splits that leave a half empty).
func fingerprints(r *rand.Rand) func() uint64 {
	return func() uint64 {
		var fp uint64
		switch r.IntN(4) {
		case 0:
			fp = r.Uint64()
		case 1:
			fp = r.Uint64()&^segMask | uint64(segMask-r.IntN(3)) // the segment's last homes
		case 2:
			fp = 0xabc<<52 | r.Uint64()>>12
		default:
			fp = uint64(r.IntN(4000)+1) * 0x9e3779b97f4a7c15 // few distinct: put again
		}
		return fingerprint(fp)
	}
}

func sweepAll(tb *idTable, now int64) {
	for i := 0; i < len(tb.dir); {
		i = tb.sweepSegment(i, now)
	}
}

// The table against a plain map, through growth, overwrites and sweeps.
func TestIDTableMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	next := fingerprints(r)
	tb, model := newIDTable(), map[uint64]int64{}
	for round := range 40 {
		for range 5000 {
			fp, exp := next(), int64(r.IntN(1000))
			tb.put(fp, exp)
			if old, ok := model[fp]; !ok || exp > old {
				model[fp] = exp
			}
		}
		if round%4 == 3 {
			now := int64(r.IntN(1000))
			sweepAll(tb, now)
			for fp, exp := range model {
				if exp <= now {
					delete(model, fp)
				}
			}
		}
		checkTable(t, tb, model)
		for range 1000 { // and fingerprints never put are not found
			fp := next()
			if _, put := model[fp]; !put {
				if exp, ok := tb.get(fp); ok {
					t.Fatalf("get(%#x) = %d of a fingerprint never put or swept", fp, exp)
				}
			}
		}
	}
	if tb.depth < 3 {
		t.Errorf("directory depth %d: the test never grew the table much", tb.depth)
	}
}

// FuzzIDTable runs a sequence of puts and sweeps against a plain map.
func FuzzIDTable(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"))
	f.Add(make([]byte, 900))
	f.Fuzz(func(t *testing.T, ops []byte) {
		tb, model := newIDTable(), map[uint64]int64{}
		for len(ops) >= 3 {
			op, v := ops[0], binary.LittleEndian.Uint16(ops[1:3])
			ops = ops[3:]
			switch {
			case op == 0xff:
				now := int64(v % 64)
				sweepAll(tb, now)
				for fp, exp := range model {
					if exp <= now {
						delete(model, fp)
					}
				}
			default:
				// Few bits spread over the top, the home and in between:
				// splits, runs and repeats.
				x := uint64(v)
				fp := fingerprint(x<<52 | x<<20 | x&0xf)
				exp := int64(op % 64)
				tb.put(fp, exp)
				if old, ok := model[fp]; !ok || exp > old {
					model[fp] = exp
				}
			}
		}
		checkTable(t, tb, model)
	})
}

// Fingerprints that share more top bits than the directory may use fill
// their segment, and then are forgotten rather than looped on: one slot
// stays empty, so every lookup ends.
func TestIDTableFullSegmentForgets(t *testing.T) {
	tb := newIDTable()
	tb.maxDepth = 0
	for i := range 2 * segSlots {
		tb.put(uint64(i+1), 1)
	}
	if n := tb.len(); n != segSlots-1 {
		t.Errorf("the unsplittable segment holds %d, want %d", n, segSlots-1)
	}
	for i := range segSlots - 1 {
		if _, ok := tb.get(uint64(i + 1)); !ok {
			t.Fatalf("fingerprint %d, put while there was room, is not found", i+1)
		}
	}
	if _, ok := tb.get(3 * segSlots); ok {
		t.Error("a fingerprint put when the segment was full is found")
	}
}
