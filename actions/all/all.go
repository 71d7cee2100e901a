// Package all links every built-in action type into the binary.
package all

import (
	_ "github.com/livehook/livehook/actions/log" // type: log
)
