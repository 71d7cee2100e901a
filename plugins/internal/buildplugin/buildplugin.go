// Package buildplugin builds the plugins that ship in this repository into
// a plugins folder: plugins/<path>/ holding a plugin.yaml and a main
// package becomes DIR/<name>/<name> plus DIR/<name>/plugin.yaml, where
// name is the path's last element.
package buildplugin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the root of the livehook module around the working
// directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the livehook module")
	}
	return filepath.Dir(mod), nil
}

// Names lists the plugins directly under root/plugins, in name order:
// the ones that ship (examples/ holds the others).
func Names(root string) ([]string, error) {
	manifests, err := filepath.Glob(filepath.Join(root, "plugins", "*", "plugin.yaml"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range manifests {
		names = append(names, filepath.Base(filepath.Dir(m)))
	}
	return names, nil
}

// Build builds the plugins at each path under root/plugins into dst,
// reporting progress to log.
func Build(ctx context.Context, root, dst string, paths []string, log io.Writer) error {
	for _, path := range paths {
		name := filepath.Base(path)
		src := filepath.Join(root, "plugins", path)
		manifest, err := os.ReadFile(filepath.Join(src, "plugin.yaml"))
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		out := filepath.Join(dst, name)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		bin, err := filepath.Abs(filepath.Join(out, name))
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./plugins/"+filepath.ToSlash(path))
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("plugin %s: go build: %w\n%s", name, err, stderr.Bytes())
		}
		if err := os.WriteFile(filepath.Join(out, "plugin.yaml"), manifest, 0o644); err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		fmt.Fprintf(log, "built %s\n", out)
	}
	return nil
}
