package journal

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	headerSize = 8 // 4-byte big-endian payload length + 4-byte CRC-32C of the payload
	segExt     = ".wal"
	segDigits  = 20 // len("18446744073709551615"): names sort in seq order
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame returns rec framed as it is stored on disk.
func frame(rec []byte) []byte {
	b := make([]byte, headerSize+len(rec))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(rec)))
	binary.BigEndian.PutUint32(b[4:8], crc32.Checksum(rec, castagnoli))
	copy(b[headerSize:], rec)
	return b
}

// segmentFile is the active segment as the committer uses it. It is an
// interface only so tests can inject write and sync failures.
type segmentFile interface {
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error     // data and metadata: after a truncate
	Datasync() error // data, and metadata only as far as reading it back needs: after a write
	Allocate(size int64) error
	Close() error
}

// openSegmentFile opens (creating if needed) a segment for writing. Writes go
// through WriteAt at offsets the Log tracks, so no O_APPEND.
func openSegmentFile(path string) (segmentFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return osSegment{f}, nil
}

// zeroFrom reports whether bytes [from, size) of f are all zero.
func zeroFrom(f io.ReaderAt, from, size int64, path string) (bool, error) {
	buf := make([]byte, 64<<10)
	for off := from; off < size; {
		chunk := buf[:min(int64(len(buf)), size-off)]
		n, err := f.ReadAt(chunk, off)
		if slices.ContainsFunc(chunk[:n], func(b byte) bool { return b != 0 }) {
			return false, nil
		}
		if n < len(chunk) {
			return false, fmt.Errorf("journal: read %s: %w", path, err)
		}
		off += int64(n)
	}
	return true, nil
}

func segName(first uint64) string {
	return fmt.Sprintf("%0*d%s", segDigits, first, segExt)
}

// parseSegName returns the first seq of a segment file name; ok is false for
// files that are not segments (the lock file, editor leftovers).
func parseSegName(name string) (first uint64, ok bool) {
	digits, found := strings.CutSuffix(name, segExt)
	if !found || len(digits) != segDigits {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || first == 0 {
		return 0, false
	}
	return first, true
}

// listSegments returns the first seqs of the segments in dir, ascending.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir) // sorted by name, and zero-padded names sort numerically
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var firsts []uint64
	for _, e := range entries {
		if first, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			firsts = append(firsts, first)
		}
	}
	return firsts, nil
}

// scan reads the framed records in the first size bytes of r and calls fn
// with each intact payload (only valid during the call). It returns the offset
// just past the last intact record. If that is short of size, bad says why the
// record at that offset was rejected. err is a read error (wrapped, naming
// path) or fn's error (unchanged).
func scan(r io.Reader, size int64, path string, fn func(payload []byte) error) (end int64, bad string, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [headerSize]byte
	var buf []byte
	for end < size {
		if size-end < headerSize {
			return end, "truncated header", nil
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return end, "", fmt.Errorf("journal: read %s: %w", path, err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[0:4]))
		switch {
		case n == 0: // Append refuses empty records, so this is a zero-filled tail
			return end, "zero length", nil
		case n > MaxRecord:
			return end, fmt.Sprintf("length %d over the %d limit", n, MaxRecord), nil
		case n > size-end-headerSize:
			return end, fmt.Sprintf("truncated payload (length %d, %d bytes left)", n, size-end-headerSize), nil
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return end, "", fmt.Errorf("journal: read %s: %w", path, err)
		}
		if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:8]) {
			return end, "checksum mismatch", nil
		}
		if err := fn(buf); err != nil {
			return end, "", err
		}
		end += headerSize + n
	}
	return end, "", nil
}

// syncDir makes creations and removals of entries in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func segPath(dir string, first uint64) string {
	return filepath.Join(dir, segName(first))
}
