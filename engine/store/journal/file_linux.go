package journal

import (
	"errors"
	"os"
	"syscall"
)

// osSegment is a segment file on Linux, where fdatasync and fallocate let a
// commit into preallocated space skip flushing the file's size.
type osSegment struct{ *os.File }

func (f osSegment) Datasync() error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// Allocate makes f size bytes long, reserving the blocks; they read as zeros.
func (f osSegment) Allocate(size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
