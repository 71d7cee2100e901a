package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet builds a command's flag set whose --help prints to w.
func newFlagSet(name, synopsis string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: livehook %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, applying LIVEHOOK_* environment variables first when
// getenv is given, so a flag on the command line wins over its variable.
func parse(fs *flag.FlagSet, args []string, getenv func(string) (string, bool)) error {
	var envErr error
	if getenv != nil {
		fs.VisitAll(func(f *flag.Flag) {
			name := envName(f.Name)
			if v, ok := getenv(name); ok && envErr == nil {
				if err := f.Value.Set(v); err != nil {
					envErr = fmt.Errorf("%s=%q: %w", name, v, err)
				}
			}
		})
	}
	if envErr != nil {
		return &exitError{code: 2, msg: envErr.Error()}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2, msg: err.Error()}
	}
	return nil
}

// envName is the environment variable for a flag: --log-level is LIVEHOOK_LOG_LEVEL.
func envName(flagName string) string {
	return "LIVEHOOK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
