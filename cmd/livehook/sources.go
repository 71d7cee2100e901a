package main

import (
	"fmt"
	"strings"

	"github.com/livehook/livehook/engine/sourceapi"
	_ "github.com/livehook/livehook/sources/all" // every built-in source
)

// lookupSource is the descriptor of the source name.
func lookupSource(reg *sourceapi.Registry, name string) (*sourceapi.Source, error) {
	s, ok := reg.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("--source %q: not a source name (1-64 letters, digits, '_', '.' or '-')", name)
	}
	return s, nil
}

// sourceNames says which names --source takes, for help.
func sourceNames() string {
	var named []string
	family := ""
	for _, s := range sourceapi.Default().All() {
		if s.Family() {
			family = " or any other source name (" + s.Doc + ")"
			continue
		}
		named = append(named, s.Name+" ("+s.Doc+")")
	}
	return strings.Join(named, ", ") + family
}

// sourcePaths lists where each source is sent, for help.
func sourcePaths() string {
	var paths []string
	for _, s := range sourceapi.Default().All() {
		paths = append(paths, s.Path+" for "+s.Doc)
	}
	return strings.Join(paths, ", ")
}
