//go:build unix

package subprocess

import (
	"os/exec"
	"syscall"
)

// ownGroup makes cmd the leader of a new process group, so whatever it
// starts can be killed with it.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills every process still in cmd's group. A group that is
// already gone (ESRCH) is what we wanted.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
