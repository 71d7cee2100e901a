// Command build builds the plugins that ship with livehook into a plugins
// folder, each as DIR/<name>/<name> with its plugin.yaml beside it. Run it
// from anywhere in the repository:
//
//	go run ./plugins/build plugins.d             # every plugin
//	go run ./plugins/build plugins.d feishu      # just these
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/livehook/livehook/plugins/internal/buildplugin"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		return fmt.Errorf("usage: go run ./plugins/build DIR [NAME...]")
	}
	ctx := context.Background()
	root, err := buildplugin.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	names := args[1:]
	if len(names) == 0 {
		if names, err = buildplugin.Names(root); err != nil {
			return err
		}
	}
	return buildplugin.Build(ctx, root, args[0], names, os.Stdout)
}
