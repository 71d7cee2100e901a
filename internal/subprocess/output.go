package subprocess

import (
	"fmt"
	"strings"
	"sync"
)

// Head keeps the first Max bytes written to it and counts the rest. It is
// safe for concurrent use, so one Head may take both streams.
type Head struct {
	Max int

	mu      sync.Mutex
	buf     []byte
	dropped int64
}

func (h *Head) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := min(len(p), h.Max-len(h.buf))
	h.buf = append(h.buf, p[:n]...)
	h.dropped += int64(len(p) - n)
	return len(p), nil
}

// Full reports whether bytes were dropped.
func (h *Head) Full() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped > 0
}

// Bytes is what was kept.
func (h *Head) Bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf
}

// String is what was kept, trimmed, with a note of what was not.
func (h *Head) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := strings.TrimSpace(string(h.buf))
	if h.dropped > 0 {
		s += fmt.Sprintf(" [%d more bytes dropped]", h.dropped)
	}
	return s
}

// HeadTail keeps the first and the last Size bytes written to it: a Go
// panic says what went wrong at the start, a Python traceback at the end.
// It is safe for concurrent use.
type HeadTail struct {
	Size int

	mu      sync.Mutex
	head    []byte
	tail    []byte
	dropped int64
}

func (h *HeadTail) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(p)
	take := min(len(p), h.Size-len(h.head))
	h.head = append(h.head, p[:take]...)
	p = p[take:]
	if len(p) == 0 {
		return n, nil
	}
	h.tail = append(h.tail, p...)
	if extra := len(h.tail) - h.Size; extra > 0 {
		h.dropped += int64(extra)
		h.tail = append(h.tail[:0], h.tail[extra:]...)
	}
	return n, nil
}

// Full reports whether bytes were dropped from the middle.
func (h *HeadTail) Full() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped > 0
}

// String is the head and the tail, with a note of what was dropped
// between them.
func (h *HeadTail) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped == 0 {
		return string(h.head) + string(h.tail)
	}
	return fmt.Sprintf("%s\n[… %d bytes dropped …]\n%s", h.head, h.dropped, h.tail)
}
