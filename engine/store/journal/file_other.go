//go:build !linux

package journal

import (
	"errors"
	"os"
)

// osSegment is a segment file where fdatasync and fallocate are not at hand:
// commits fsync, and files grow as they are written.
type osSegment struct{ *os.File }

func (f osSegment) Datasync() error { return f.Sync() }

func (f osSegment) Allocate(int64) error { return errors.ErrUnsupported }
