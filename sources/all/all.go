// Package all links every built-in source into the binary.
package all

import (
	_ "github.com/livehook/livehook/sources/aliyunrecord" // POST /callbacks/record
	_ "github.com/livehook/livehook/sources/generic"      // POST /events/{source}
)
