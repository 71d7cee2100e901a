//go:build !unix

package host

import "os/exec"

// ownGroup does nothing without Unix process groups.
func ownGroup(*exec.Cmd) {}

// killGroup kills the plugin's process only: without process groups, what
// it started may outlive it.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
