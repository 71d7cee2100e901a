package main

import (
	"fmt"
	"io"

	"github.com/livehook/livehook/engine/action"
)

func actionsCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("actions", "actions\n\nList the action types this build knows.", stderr)
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	for _, t := range action.Default().Types() {
		fmt.Fprintf(stdout, "%-10s %s\n", t.Name, t.Doc)
	}
	return nil
}
