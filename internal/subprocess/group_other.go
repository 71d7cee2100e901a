//go:build !unix

package subprocess

import "os/exec"

// ownGroup does nothing without Unix process groups.
func ownGroup(*exec.Cmd) {}

// killGroup kills the program only: without process groups, what it
// started may outlive it.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
