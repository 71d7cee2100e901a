package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	var n atomic.Int32
	if !Within(time.Minute, func() bool { return n.Add(1) >= 3 }) || n.Load() != 3 {
		t.Errorf("a condition that holds on its third look: looked %d times", n.Load())
	}
	if Within(20*time.Millisecond, func() bool { return false }) {
		t.Error("a condition that never holds was reported as holding")
	}
}
