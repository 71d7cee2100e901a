// Package all links every built-in source into the binary.
package all

import (
	_ "github.com/livehook/livehook/sources/aliyunmoderation" // POST /callbacks/moderation/video, /callbacks/moderation/audio
	_ "github.com/livehook/livehook/sources/aliyunondemand"   // GET /callbacks/ondemand
	_ "github.com/livehook/livehook/sources/aliyunrecord"     // POST /callbacks/record
	_ "github.com/livehook/livehook/sources/aliyunrelay"      // POST /callbacks/relay
	_ "github.com/livehook/livehook/sources/aliyunsnapshot"   // POST /callbacks/snapshot
	_ "github.com/livehook/livehook/sources/aliyunstream"     // GET /callbacks/stream
	_ "github.com/livehook/livehook/sources/aliyunvod"        // POST /callbacks/vod
	_ "github.com/livehook/livehook/sources/generic"          // POST /events/{source}
)
