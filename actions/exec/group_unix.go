//go:build unix

package execaction

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownGroup runs cmd in its own process group and makes cancelling it kill
// the whole group, so a timeout also kills what the command spawned.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
