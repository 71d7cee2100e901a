package watch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	testDebounce = 50 * time.Millisecond
	waitFor      = 3 * time.Second  // deadline for an expected call
	fsDeadline   = 30 * time.Second // real time a test may wait for the file system's events
)

// newTestWatcher sets the watch on path up, outside any bubble: fsnotify's
// reader goroutine blocks in system calls, which a bubble cannot wait for.
func newTestWatcher(t *testing.T, path string, debounce time.Duration) *watcher {
	t.Helper()
	w, err := newWatcher(path, Options{Debounce: debounce, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.fsw.Close() })
	return w
}

// loop runs a watcher's event loop inside a synctest bubble on the events
// the test hands it: the debounce runs on the bubble's clock, and deliver
// knows when every change made so far has been handled, so whether
// onChange was called is a fact, not something waited for.
type loop struct {
	t        *testing.T
	w        *watcher
	fs       <-chan fsnotify.Event // the file system's events, from outside the bubble
	fsErrs   <-chan error
	events   chan fsnotify.Event // what the loop reads
	errs     chan error
	called   chan struct{}
	probes   int
	deadline <-chan time.Time // real time, from outside the bubble
}

// watchInBubble runs body in a bubble with w's loop running, until body
// returns. w must be new: its loop reads the events body hands it.
func watchInBubble(t *testing.T, w *watcher, body func(t *testing.T, l *loop)) {
	deadline := time.After(fsDeadline)
	synctest.Test(t, func(t *testing.T) {
		l := &loop{t: t, w: w, fs: w.fsw.Events, fsErrs: w.fsw.Errors,
			events: make(chan fsnotify.Event), errs: make(chan error), called: make(chan struct{}, 1000), deadline: deadline}
		// run reads the channels from these fields; fsnotify itself sends
		// on its own references to the originals.
		w.fsw.Events, w.fsw.Errors = l.events, l.errs
		go w.run(t.Context(), func() { l.called <- struct{}{} })
		body(t, l)
	})
}

// deliver hands the loop every event of the changes made so far, and
// returns once it has handled them: it writes a probe file beside the
// watched path (a directory always watched, and a name that changes no
// rules) and forwards events up to the probe's own, as the kernel reports
// them in order.
func (l *loop) deliver() {
	l.t.Helper()
	l.probes++
	probe := filepath.Join(filepath.Dir(l.w.link), fmt.Sprintf(".probe-%d", l.probes))
	write(l.t, probe, "")
	for {
		select {
		case ev, ok := <-l.fs:
			if !ok {
				l.t.Fatal("fsnotify closed its events")
			}
			l.events <- ev
			if ev.Name == probe {
				synctest.Wait()
				return
			}
		case err := <-l.fsErrs:
			l.errs <- err
		case <-l.deadline:
			l.t.Fatalf("no event for %s within %v of the test's start", probe, fsDeadline)
		}
	}
}

// settle delivers the changes made so far and lets the debounce pass:
// afterwards every call they lead to has been made.
func (l *loop) settle() {
	l.t.Helper()
	l.deliver()
	time.Sleep(l.w.debounce)
	synctest.Wait()
}

// calls counts the onChange calls made since it was last asked.
func (l *loop) calls() int {
	for n := 0; ; n++ {
		select {
		case <-l.called:
		default:
			return n
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(data), 0o644))
}

// renameOver saves the way vim and IDEs do: temp file, then rename onto path.
func renameOver(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	write(t, tmp, data)
	must(t, os.Rename(tmp, path))
}

// configMap builds a kubelet-style ConfigMap volume holding rules.yaml:
// ..2026_a/rules.yaml, ..data -> ..2026_a, rules.yaml -> ..data/rules.yaml.
func configMap(t *testing.T, dir string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "..2026_a"), 0o755))
	write(t, filepath.Join(dir, "..2026_a", "rules.yaml"), "gen: a\n")
	must(t, os.Symlink("..2026_a", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/rules.yaml", filepath.Join(dir, "rules.yaml")))
}

// swapConfigMap publishes generation to and drops generation from, the way
// kubelet's atomic writer updates a ConfigMap volume.
func swapConfigMap(t *testing.T, dir, from, to string) {
	t.Helper()
	must(t, os.Mkdir(filepath.Join(dir, to), 0o755))
	write(t, filepath.Join(dir, to, "rules.yaml"), "gen: "+to+"\n")
	must(t, os.Symlink(to, filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(filepath.Join(dir, from)))
}

// repoint atomically re-points symlink link at target via rename.
func repoint(t *testing.T, link, target string) {
	t.Helper()
	must(t, os.Symlink(target, link+".tmp"))
	must(t, os.Rename(link+".tmp", link))
}

type step struct {
	name string
	do   func(t *testing.T, dir string)
	want bool // onChange expected
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) (path string)
		steps []step
	}{
		{
			name: "file in-place write",
			setup: func(t *testing.T, dir string) string {
				write(t, filepath.Join(dir, "rules.yaml"), "v: 1\n")
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"write", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules.yaml"), "v: 2\n") }, true},
				{"write again", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules.yaml"), "v: 3\n") }, true},
			},
		},
		{
			name: "file rename-over save",
			setup: func(t *testing.T, dir string) string {
				write(t, filepath.Join(dir, "rules.yaml"), "v: 1\n")
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"save", func(t *testing.T, dir string) { renameOver(t, filepath.Join(dir, "rules.yaml"), "v: 2\n") }, true},
				// A watch on the file itself would have died with the first save.
				{"save again", func(t *testing.T, dir string) { renameOver(t, filepath.Join(dir, "rules.yaml"), "v: 3\n") }, true},
			},
		},
		{
			name: "file vim backup save",
			setup: func(t *testing.T, dir string) string {
				write(t, filepath.Join(dir, "rules.yaml"), "v: 1\n")
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"save", func(t *testing.T, dir string) {
					p := filepath.Join(dir, "rules.yaml")
					must(t, os.Rename(p, p+"~"))
					write(t, p, "v: 2\n")
					must(t, os.Remove(p+"~"))
				}, true},
			},
		},
		{
			name: "file unrelated events ignored",
			setup: func(t *testing.T, dir string) string {
				write(t, filepath.Join(dir, "rules.yaml"), "v: 1\n")
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"other files", func(t *testing.T, dir string) {
					write(t, filepath.Join(dir, "other.yaml"), "x: 1\n")
					write(t, filepath.Join(dir, ".rules.yaml.swp"), "x")
					must(t, os.Remove(filepath.Join(dir, "other.yaml")))
				}, false},
				{"chmod", func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, "rules.yaml"), 0o600)) }, false},
				{"target still watched", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules.yaml"), "v: 2\n") }, true},
			},
		},
		{
			name: "file deleted and re-created",
			setup: func(t *testing.T, dir string) string {
				write(t, filepath.Join(dir, "rules.yaml"), "v: 1\n")
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"delete", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "rules.yaml"))) }, true},
				{"re-create", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules.yaml"), "v: 2\n") }, true},
				{"write", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules.yaml"), "v: 3\n") }, true},
			},
		},
		{
			name: "file missing at start",
			setup: func(t *testing.T, dir string) string {
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"create", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules.yaml"), "v: 1\n") }, true},
			},
		},
		{
			name: "file symlink to file elsewhere",
			setup: func(t *testing.T, dir string) string {
				must(t, os.Mkdir(filepath.Join(dir, "real"), 0o755))
				write(t, filepath.Join(dir, "real", "rules.yaml"), "v: 1\n")
				must(t, os.Symlink(filepath.Join("real", "rules.yaml"), filepath.Join(dir, "rules.yaml")))
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"write target", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "real", "rules.yaml"), "v: 2\n") }, true},
				{"target sibling", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "real", "other.yaml"), "v: 2\n") }, false},
			},
		},
		{
			name: "dir yaml files",
			setup: func(t *testing.T, dir string) string {
				return dir
			},
			steps: []step{
				{"add", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.yaml"), "v: 1\n") }, true},
				{"modify", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.yaml"), "v: 2\n") }, true},
				{"add yml", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "b.yml"), "v: 1\n") }, true},
				{"rename", func(t *testing.T, dir string) {
					must(t, os.Rename(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "c.yaml")))
				}, true},
				{"rename-over save", func(t *testing.T, dir string) { renameOver(t, filepath.Join(dir, "c.yaml"), "v: 3\n") }, true},
				{"remove", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "b.yml"))) }, true},
			},
		},
		{
			name: "dir non-yaml ignored",
			setup: func(t *testing.T, dir string) string {
				return dir
			},
			steps: []step{
				{"other files", func(t *testing.T, dir string) {
					write(t, filepath.Join(dir, "notes.txt"), "x")
					write(t, filepath.Join(dir, "a.yaml.swp"), "x")
					write(t, filepath.Join(dir, ".hidden.yaml"), "x") // the loader skips dotfiles
					must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
					write(t, filepath.Join(dir, "sub", "nested.yaml"), "x")
					must(t, os.Remove(filepath.Join(dir, "notes.txt")))
				}, false},
				{"yaml still watched", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "a.yaml"), "v: 1\n") }, true},
			},
		},
		{
			name: "dir deleted and re-created",
			setup: func(t *testing.T, dir string) string {
				must(t, os.Mkdir(filepath.Join(dir, "rules"), 0o755))
				write(t, filepath.Join(dir, "rules", "a.yaml"), "v: 1\n")
				return filepath.Join(dir, "rules")
			},
			steps: []step{
				{"delete", func(t *testing.T, dir string) { must(t, os.RemoveAll(filepath.Join(dir, "rules"))) }, true},
				{"re-create", func(t *testing.T, dir string) { must(t, os.Mkdir(filepath.Join(dir, "rules"), 0o755)) }, true},
				{"add yaml", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules", "a.yaml"), "v: 2\n") }, true},
				{"replace at once", func(t *testing.T, dir string) {
					must(t, os.RemoveAll(filepath.Join(dir, "rules")))
					must(t, os.Mkdir(filepath.Join(dir, "rules"), 0o755))
				}, true},
				{"write after replace", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "rules", "a.yaml"), "v: 3\n") }, true},
			},
		},
		{
			name: "configmap dir",
			setup: func(t *testing.T, dir string) string {
				configMap(t, dir)
				return dir
			},
			steps: []step{
				{"swap", func(t *testing.T, dir string) { swapConfigMap(t, dir, "..2026_a", "..2026_b") }, true},
				{"swap again", func(t *testing.T, dir string) { swapConfigMap(t, dir, "..2026_b", "..2026_c") }, true},
			},
		},
		{
			name: "configmap file symlink",
			setup: func(t *testing.T, dir string) string {
				configMap(t, dir)
				return filepath.Join(dir, "rules.yaml")
			},
			steps: []step{
				{"swap", func(t *testing.T, dir string) { swapConfigMap(t, dir, "..2026_a", "..2026_b") }, true},
				{"swap again", func(t *testing.T, dir string) { swapConfigMap(t, dir, "..2026_b", "..2026_c") }, true},
			},
		},
		{
			name: "dir symlink re-pointed",
			setup: func(t *testing.T, dir string) string {
				for _, v := range []string{"v1", "v2", "v3"} {
					must(t, os.Mkdir(filepath.Join(dir, v), 0o755))
				}
				must(t, os.Symlink("v1", filepath.Join(dir, "current")))
				return filepath.Join(dir, "current")
			},
			steps: []step{
				{"write through link", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "v1", "a.yaml"), "v: 1\n") }, true},
				{"re-point by rename", func(t *testing.T, dir string) { repoint(t, filepath.Join(dir, "current"), "v2") }, true},
				{"old target dropped", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "v1", "a.yaml"), "v: 2\n") }, false},
				{"new target watched", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "v2", "a.yaml"), "v: 1\n") }, true},
				// ln -sfn: remove, then create.
				{"re-point by replace", func(t *testing.T, dir string) {
					must(t, os.Remove(filepath.Join(dir, "current")))
					must(t, os.Symlink("v3", filepath.Join(dir, "current")))
				}, true},
				{"newest target watched", func(t *testing.T, dir string) { write(t, filepath.Join(dir, "v3", "a.yaml"), "v: 1\n") }, true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			w := newTestWatcher(t, tt.setup(t, dir), testDebounce)
			watchInBubble(t, w, func(t *testing.T, l *loop) {
				for _, s := range tt.steps {
					s.do(t, dir)
					l.settle()
					want := map[bool]int{true: 1, false: 0}[s.want]
					if n := l.calls(); n != want {
						t.Fatalf("%s: onChange called %d time(s), want %d", s.name, n, want)
					}
				}
			})
		})
	}
}

// TestWatchesFollowTarget checks that a swap leaves exactly the watches the
// new layout needs, without leaking the old target's watch.
func TestWatchesFollowTarget(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) (path string)
		swap   func(t *testing.T, dir string)
		before []string // watched dirs, relative to the test dir
		after  []string
	}{
		{
			name: "dir symlink",
			setup: func(t *testing.T, dir string) string {
				must(t, os.Mkdir(filepath.Join(dir, "v1"), 0o755))
				must(t, os.Mkdir(filepath.Join(dir, "v2"), 0o755))
				must(t, os.Symlink("v1", filepath.Join(dir, "current")))
				return filepath.Join(dir, "current")
			},
			swap:   func(t *testing.T, dir string) { repoint(t, filepath.Join(dir, "current"), "v2") },
			before: []string{".", "v1"},
			after:  []string{".", "v2"},
		},
		{
			name: "configmap file symlink",
			setup: func(t *testing.T, dir string) string {
				configMap(t, dir)
				return filepath.Join(dir, "rules.yaml")
			},
			swap:   func(t *testing.T, dir string) { swapConfigMap(t, dir, "..2026_a", "..2026_b") },
			before: []string{".", "..2026_a"},
			after:  []string{".", "..2026_b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := filepath.EvalSymlinks(t.TempDir())
			must(t, err)
			w, err := newWatcher(tt.setup(t, dir), Options{Logger: testLogger(t)})
			must(t, err)
			defer w.fsw.Close()
			checkWatches(t, w, dir, tt.before)
			tt.swap(t, dir)
			// Drive handle directly: no event loop, so no timing involved.
			if !w.handle(fsnotify.Event{Name: w.link, Op: fsnotify.Create}) {
				t.Error("swap not reported as a change")
			}
			checkWatches(t, w, dir, tt.after)
		})
	}
}

func checkWatches(t *testing.T, w *watcher, dir string, want []string) {
	t.Helper()
	var got []string
	for _, p := range w.fsw.WatchList() {
		rel, err := filepath.Rel(dir, p)
		must(t, err)
		got = append(got, rel)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("watching %q, want %q", got, want)
	}
}

// TestDebounceBurst: changes closer together than the debounce make one
// call, a debounce after the last of them.
func TestDebounceBurst(t *testing.T) {
	const debounce = 250 * time.Millisecond
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, "v: 0\n")
	w := newTestWatcher(t, path, debounce)
	watchInBubble(t, w, func(t *testing.T, l *loop) {
		for i := range 20 {
			write(t, path, strings.Repeat("v: 1\n", i+1))
			l.deliver()
			time.Sleep(debounce / 2)
		}
		time.Sleep(debounce/2 - time.Millisecond)
		synctest.Wait()
		if n := l.calls(); n != 0 {
			t.Fatalf("%d call(s) before a debounce had passed since the last write, want none", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := l.calls(); n != 1 {
			t.Fatalf("burst of 20 writes gave %d calls, want 1", n)
		}
	})
}

func TestOnChangeNotConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write(t, path, "v: 0\n")
	w, err := newWatcher(path, Options{Debounce: 10 * time.Millisecond, Logger: testLogger(t)})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var inFlight, overlaps, calls atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.fsw.Close()
		w.run(ctx, func() {
			if inFlight.Add(1) > 1 {
				overlaps.Add(1)
			}
			calls.Add(1)
			time.Sleep(100 * time.Millisecond) // a slow reload; changes keep coming
			inFlight.Add(-1)
		})
	}()

	// Keep writing until several calls happened, each while others may be due.
	deadline := time.Now().Add(waitFor)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		write(t, path, "v: 1\n")
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if calls.Load() < 3 {
		t.Fatalf("got %d calls, want at least 3", calls.Load())
	}
	if overlaps.Load() != 0 {
		t.Fatalf("onChange ran concurrently %d times", overlaps.Load())
	}
}

func TestWatchCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, "v: 0\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan struct{}, 100)
	errc := make(chan error, 1)
	go func() {
		errc <- Watch(ctx, path, Options{Debounce: 10 * time.Millisecond, Logger: testLogger(t)},
			func() { calls <- struct{}{} })
	}()

	// Watch gives no ready signal: write until a call proves it is running.
	deadline := time.After(waitFor)
	for running := false; !running; {
		write(t, path, "v: 1\n")
		select {
		case <-calls:
			running = true
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("Watch never called onChange")
		}
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Watch returned %v after cancel, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Watch did not return within 1s of cancel")
	}
}

func TestWatchSetupError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "rules.yaml")
	err := Watch(context.Background(), path, Options{Logger: testLogger(t)}, func() {})
	if err == nil || !strings.Contains(err.Error(), "watch "+path) {
		t.Fatalf("Watch(%s) = %v, want a setup error naming the path", path, err)
	}
}
