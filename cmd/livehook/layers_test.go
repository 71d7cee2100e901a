package main

import (
	"errors"
	"go/build"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencyDirection holds the layering docs/design.md describes: the
// core knows no concrete action, source or plugin, no edge (the HTTP
// servers, the rules watcher, the sweeper) and never the command; intake,
// admin and the sweeper declare what they consume instead of importing the
// engine; actions and sources know nothing of each other or of the edges.
func TestDependencyDirection(t *testing.T) {
	const module = "github.com/livehook/livehook/"
	// Patterns as the go command reads them: "engine/..." is engine and
	// every package below it, "engine" is that package alone.
	match := func(pkg string, patterns ...string) bool {
		for _, p := range patterns {
			if root, tree := strings.CutSuffix(p, "/..."); tree && (pkg == root || strings.HasPrefix(pkg, root+"/")) || pkg == p {
				return true
			}
		}
		return false
	}
	edges := []string{"internal/intake", "internal/admin", "internal/watch", "internal/sweeper/..."}
	rules := []struct{ pkgs, forbidden []string }{
		{[]string{"engine/..."}, append([]string{"actions/...", "sources/...", "plugins/...", "cmd/..."}, edges...)},
		{[]string{"internal/intake", "internal/admin", "internal/sweeper/..."}, []string{"engine"}},
		{[]string{"actions/..."}, append([]string{"sources/...", "plugins/...", "cmd/..."}, edges...)},
		{[]string{"sources/..."}, append([]string{"actions/...", "plugins/...", "cmd/..."}, edges...)},
	}
	checked := 0
	err := filepath.WalkDir(filepath.Join("..", ".."), func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if n := d.Name(); n == "testdata" || strings.HasPrefix(n, ".") && n != ".." {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(dir, 0) // imports of the non-test files
		var none *build.NoGoError
		if errors.As(err, &none) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(filepath.Join("..", ".."), dir)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		checked++
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			for _, r := range rules {
				if match(pkg, r.pkgs...) && match(dep, r.forbidden...) {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d packages: is the walk at the module's root?", checked)
	}
}
