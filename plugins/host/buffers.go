package host

import (
	"fmt"
	"sync"
)

// capped keeps the first max bytes written to it and calls over once when
// more arrive: a plugin's answer is bounded, and one that exceeds the
// bound is killed rather than read forever. It never fails a write.
type capped struct {
	max  int
	over func()

	mu       sync.Mutex
	buf      []byte
	exceeded bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(p), c.max-len(c.buf))
	c.buf = append(c.buf, p[:n]...)
	if n < len(p) && !c.exceeded {
		c.exceeded = true
		c.over()
	}
	return len(p), nil
}

func (c *capped) bytes() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf, c.exceeded
}

// headTail keeps the first and the last size bytes written to it: a Go
// panic says what went wrong at the start, a Python traceback at the end.
type headTail struct {
	size int

	mu      sync.Mutex
	head    []byte
	tail    []byte
	dropped int64
}

func (h *headTail) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(p)
	take := min(len(p), h.size-len(h.head))
	h.head = append(h.head, p[:take]...)
	p = p[take:]
	if len(p) == 0 {
		return n, nil
	}
	h.tail = append(h.tail, p...)
	if extra := len(h.tail) - h.size; extra > 0 {
		h.dropped += int64(extra)
		h.tail = append(h.tail[:0], h.tail[extra:]...)
	}
	return n, nil
}

func (h *headTail) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped == 0 {
		return string(h.head) + string(h.tail)
	}
	return fmt.Sprintf("%s\n[… %d bytes dropped …]\n%s", h.head, h.dropped, h.tail)
}
