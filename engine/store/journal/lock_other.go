//go:build !unix

package journal

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only creates dir/LOCK here: these systems have no flock, and
// livehook runs on Linux; this keeps the package building elsewhere.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return f, nil
}
