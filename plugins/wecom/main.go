// Command wecom is a livehook plugin that sends text and markdown messages
// through a WeCom (企业微信) group robot. See README.md.
package main

import (
	"github.com/livehook/livehook/plugins/sdk"
	"github.com/livehook/livehook/plugins/sdk/sdkhttp"
)

func main() {
	sdk.Serve(handler{client: sdkhttp.Client()}.handle)
}
