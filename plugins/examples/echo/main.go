// Command echo is the smallest useful livehook plugin in Go, a start for
// new ones: it answers delivered, with its text parameter as the detail.
// The plugin host's benchmark runs it to measure what a delivery costs.
package main

import (
	"context"

	"github.com/livehook/livehook/plugins/sdk"
)

func main() {
	sdk.Serve(func(_ context.Context, req *sdk.Request) sdk.Response {
		var p struct {
			Text string `json:"text"`
		}
		if err := req.DecodeParams(&p); err != nil {
			return sdk.Permanent("params: %v", err)
		}
		return sdk.Delivered(p.Text)
	})
}
