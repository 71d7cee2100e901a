package execaction

import (
	"fmt"
	"strings"
)

// outputLimit is how much of each of stdout and stderr is kept.
const outputLimit = 4 << 10

// capped is an io.Writer that keeps the first max bytes and counts the
// rest, so a chatty command cannot grow the daemon's memory. It never
// fails a write: a command must not block or die because we stopped
// listening.
type capped struct {
	max     int
	buf     []byte
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	n := min(len(p), c.max-len(c.buf))
	c.buf = append(c.buf, p[:n]...)
	c.dropped += int64(len(p) - n)
	return len(p), nil
}

// String is what was kept, trimmed, with a note of what was not.
func (c *capped) String() string {
	s := strings.TrimSpace(string(c.buf))
	if c.dropped > 0 {
		s += fmt.Sprintf(" [%d more bytes dropped]", c.dropped)
	}
	return s
}
