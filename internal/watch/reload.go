// Package reload watches a rules file or directory and reports when it
// changed, surviving the ways operators and Kubernetes actually replace
// files: in-place writes, rename-over saves, ConfigMap "..data" symlink swaps
// and re-pointed symlinks.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options tunes Watch.
type Options struct {
	Debounce time.Duration // default 100ms when zero (or negative)
	Logger   *slog.Logger  // nil = slog.Default(); watcher errors are logged, never fatal
	// Started, if set, is called once every watch is in place: a change
	// made after it returns is seen.
	Started func()
}

// Watch watches path (a rules file, or a directory of rules files) and calls
// onChange after changes settle (debounce), until ctx is done.
// It returns an error only if the watch cannot be set up at all.
//
// Watch blocks until ctx is cancelled and then returns nil. onChange runs on
// Watch's goroutine, so it is never called concurrently with itself; changes
// made while it runs lead to another call once they settle.
func Watch(ctx context.Context, path string, opts Options, onChange func()) error {
	w, err := newWatcher(path, opts)
	if err != nil {
		return err
	}
	defer w.fsw.Close()
	if opts.Started != nil {
		opts.Started()
	}
	w.run(ctx, onChange)
	return nil
}

type watcher struct {
	fsw      *fsnotify.Watcher
	log      *slog.Logger
	debounce time.Duration

	// link is PATH with its parent directory resolved, so it matches the
	// names fsnotify reports. It is the name that gets renamed over,
	// re-pointed or deleted and re-created.
	link string
	// target is link with all symlinks resolved ("" while it does not exist).
	target string
	isDir  bool
}

// newWatcher sets up every watch before returning, so changes made after it
// returns are seen.
func newWatcher(path string, opts Options) (*watcher, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	w := &watcher{
		fsw:      fsw,
		log:      opts.Logger,
		debounce: opts.Debounce,
		link:     filepath.Join(parent, filepath.Base(abs)),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.debounce <= 0 {
		w.debounce = 100 * time.Millisecond
	}
	w.target, w.isDir = w.resolve()
	if err := w.sync(); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return w, nil
}

func (w *watcher) run(ctx context.Context, onChange func()) {
	timer := time.NewTimer(w.debounce)
	timer.Stop()
	events, errs := w.fsw.Events, w.fsw.Errors
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok { // fsnotify shut down; keep honouring ctx without spinning
				events = nil
				continue
			}
			if w.handle(ev) {
				timer.Reset(w.debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.log.Warn("rules watcher error", "path", w.link, "err", err)
			// The kernel dropped events: we cannot know what changed.
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.refresh()
				timer.Reset(w.debounce)
			}
		case <-timer.C:
			onChange()
		}
	}
}

// handle reports whether ev means the rules may have changed.
func (w *watcher) handle(ev fsnotify.Event) bool {
	// Re-resolve on every event: symlink swaps (ConfigMap ..data, a re-pointed
	// PATH) and a deleted and re-created PATH only show up as events on other
	// names, and they can leave our watches pointing at the wrong directory.
	if w.refresh() {
		return true
	}
	// A bare chmod or touch does not change content.
	if ev.Op&^fsnotify.Chmod == 0 {
		return false
	}
	if ev.Name == w.link || ev.Name == w.target {
		return true
	}
	base := filepath.Base(ev.Name)
	// In a ConfigMap mount the yaml names are stable symlinks through ..data;
	// only the ..data rename tells us their content changed.
	return w.isDir && filepath.Dir(ev.Name) == w.target &&
		(base == "..data" || isRulesFile(base))
}

// refresh re-resolves link and re-syncs the watches to match. It reports
// whether the resolution changed.
func (w *watcher) refresh() bool {
	target, isDir := w.resolve()
	moved := target != w.target || isDir != w.isDir
	w.target, w.isDir = target, isDir
	if err := w.sync(); err != nil {
		w.log.Warn("rules watcher: cannot watch", "path", w.link, "err", err)
	}
	return moved
}

func (w *watcher) resolve() (target string, isDir bool) {
	target, err := filepath.EvalSymlinks(w.link)
	if err != nil {
		return "", false
	}
	fi, err := os.Stat(target)
	if err != nil {
		return "", false
	}
	return target, fi.IsDir()
}

// sync makes the watch list match the current resolution: the directory
// holding link (a watch on the file itself would not survive a rename-over
// save), plus the resolved directory, or the directory holding the resolved
// file when link is a symlink elsewhere.
func (w *watcher) sync() error {
	want := []string{filepath.Dir(w.link)}
	switch {
	case w.isDir:
		want = append(want, w.target)
	case w.target != "":
		want = append(want, filepath.Dir(w.target))
	}
	slices.Sort(want)
	want = slices.Compact(want) // a plain file's directory is already there
	var errs []error
	for _, dir := range want {
		// Add even if already listed: the directory may have been replaced,
		// and re-adding moves the watch to the new inode (a no-op otherwise).
		if err := w.fsw.Add(dir); err != nil {
			errs = append(errs, fmt.Errorf("add %s: %w", dir, err))
		}
	}
	for _, dir := range w.fsw.WatchList() {
		if !slices.Contains(want, dir) {
			// Fails harmlessly when the directory is already gone, as the old
			// ConfigMap generation usually is.
			if err := w.fsw.Remove(dir); err != nil {
				w.log.Debug("rules watcher: drop old watch", "dir", dir, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}

// isRulesFile matches what the rules loader reads from a directory: visible
// *.yaml and *.yml files.
func isRulesFile(name string) bool {
	ext := filepath.Ext(name)
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}
