// Package all links every built-in action type into the binary.
package all

import (
	_ "github.com/livehook/livehook/actions/dingtalk" // type: dingtalk
	_ "github.com/livehook/livehook/actions/exec"     // type: exec
	_ "github.com/livehook/livehook/actions/log"      // type: log
	_ "github.com/livehook/livehook/actions/mps"      // type: mps
	_ "github.com/livehook/livehook/actions/oss"      // type: oss
	_ "github.com/livehook/livehook/actions/slack"    // type: slack
	_ "github.com/livehook/livehook/actions/webhook"  // type: webhook
)
