//go:build unix

package host

import (
	"os/exec"
	"syscall"
)

// ownGroup makes cmd the leader of a new process group, so whatever it
// starts can be killed with it.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills every process still in cmd's group. Killing a group that
// is already gone (ESRCH) is not an error worth reporting.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
