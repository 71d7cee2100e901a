package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/rules"
	"github.com/livehook/livehook/engine/yamlconf"
)

func checkCmd(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("check", "check PATH\n\nValidate a rules file, or a directory of them, without starting anything.\nPrints a one-line summary and exits 0, or lists every problem as\nfile:line:col: message and exits 1.", stderr)
	var plugins string
	pluginsFlag(fs, &plugins, getenv)
	cycle := fs.Duration("expected-cycle", 0, "warn of absence windows (expect: within) shorter than this recording cycle, such as 6h (Aliyun's default CycleDuration)")
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "check: want exactly one PATH"}
	}
	set, err := loadForCLI(fs.Arg(0), getenv, plugins)
	if err != nil {
		return reportLoadError(stdout, err)
	}
	defer set.Retire()
	if *cycle > 0 {
		for _, w := range set.CycleWarnings(*cycle) {
			fmt.Fprintln(stdout, w)
		}
	}
	fmt.Fprintf(stdout, "ok: %s: %s\n", fs.Arg(0), set.Summary())
	return nil
}

// loadForCLI loads rules for a command that sends nothing: instances get a
// logger that discards, the environment the command was given, and the
// built-in types plus the plugins in the folder plugins.
func loadForCLI(path string, getenv func(string) (string, bool), plugins string) (*rules.Set, error) {
	reg, err := pluginRegistry(plugins)()
	if err != nil {
		return nil, err
	}
	return rules.Load(path, rules.Options{
		Registry: reg,
		Getenv:   getenv,
		Deps:     actionapi.Deps{Logger: slog.New(slog.DiscardHandler), HTTP: actionapi.NewHTTP(nil)},
	})
}

// reportLoadError prints every diagnostic of a failed load and returns
// exit status 1.
func reportLoadError(w io.Writer, err error) error {
	ds := yamlconf.Diagnostics(err)
	if ds == nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	for _, d := range ds {
		fmt.Fprintln(w, d)
	}
	return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s) found", len(ds))}
}
