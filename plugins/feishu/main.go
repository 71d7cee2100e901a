// Command feishu is a livehook plugin that sends text and interactive card
// messages through a Feishu (Lark) custom bot. See README.md.
package main

import (
	"time"

	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

func main() {
	sdk.Serve(handler{client: sdkhttp.Client(), now: time.Now}.handle)
}
