// Package testwait waits, in tests and benchmarks, until a condition
// holds: the one place that polls, so no test sleeps for a guess.
package testwait

import (
	"testing"
	"time"
)

// every is how often a condition is looked at again.
const every = 5 * time.Millisecond

// Within reports whether cond came to hold within d, looking at it every
// few milliseconds.
func Within(d time.Duration, cond func() bool) bool {
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// Until fails t unless cond comes to hold within d; what says what was
// waited for.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("%s did not happen within %s", what, d)
	}
}
