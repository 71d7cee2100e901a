package provider

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/yamlconf"
)

// Options say where plugins are and what they are added to.
type Options struct {
	Dir string // each folder in it holding a plugin.yaml is a plugin
	// Base holds the built-in types, which a plugin may not shadow.
	// Default: actionapi.Default().
	Base *actionapi.Registry
	// MissingOK makes a missing Dir mean "no plugins" rather than an
	// error: right for the default folder, wrong for one the user named.
	MissingOK bool
}

// Provider returns the function engine.Options.Registry wants: each call
// scans the folder again, so a reload picks up added, changed and removed
// plugins.
func Provider(o Options) func() (*actionapi.Registry, error) {
	return func() (*actionapi.Registry, error) { return Registry(o) }
}

// Registry scans o.Dir and returns o.Base plus a type for every plugin.
// Every problem in any manifest, a plugin named like a built-in type
// included, is reported in one *yamlconf.Error with its file:line:col.
func Registry(o Options) (*actionapi.Registry, error) {
	base := o.Base
	if base == nil {
		base = actionapi.Default()
	}
	plugins, err := Scan(o.Dir, o.MissingOK)
	l := yamlconf.Diagnostics(err)
	if err != nil && l == nil {
		return nil, err
	}
	var types []actionapi.Type
	for _, p := range plugins {
		if _, builtin := base.Lookup(p.Name); builtin {
			l.At(p.File, p.name, "plugin %q would shadow the built-in action type %q; rename its folder and name", p.Name, p.Name)
			continue
		}
		types = append(types, p.Type())
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return base.With(types...)
}

// Scan loads every plugin in dir, in name order. Entries whose name starts
// with a dot, files, and folders without a plugin.yaml are skipped.
func Scan(dir string, missingOK bool) ([]*Plugin, error) {
	if dir == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	entries, err := os.ReadDir(abs)
	if errors.Is(err, os.ErrNotExist) && missingOK {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	var (
		l       yamlconf.List
		plugins []*Plugin
	)
	for _, e := range entries {
		folder := filepath.Join(abs, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if st, err := os.Stat(filepath.Join(folder, ManifestFile)); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if p := loadManifest(folder, &l); p != nil {
			plugins = append(plugins, p)
		}
	}
	return plugins, l.Err()
}
