//go:build !unix

package execaction

import "os/exec"

// ownGroup is a no-op without Unix process groups: cancelling kills the
// command only (exec's default).
func ownGroup(*exec.Cmd) {}
