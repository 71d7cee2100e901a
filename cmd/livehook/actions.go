package main

import (
	"fmt"
	"io"
)

func actionsCmd(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("actions", "actions [--plugins DIR]\n\nList the action types rules can use: the built-in ones and the plugins in DIR.", stderr)
	var plugins string
	pluginsFlag(fs, &plugins, getenv)
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	reg, err := pluginRegistry(plugins)()
	if err != nil {
		return reportLoadError(stdout, err)
	}
	for _, t := range reg.Types() {
		fmt.Fprintf(stdout, "%-10s %s\n", t.Name, t.Doc)
	}
	return nil
}
