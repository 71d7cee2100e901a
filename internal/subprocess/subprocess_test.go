//go:build unix

package subprocess

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// sh runs script with /bin/sh; $1 is a fresh directory for notes.
func sh(script string, dir string) Command {
	return Command{
		Path: "/bin/sh", Args: []string{"-c", script, "sh", dir},
		Env:    []string{"PATH=" + os.Getenv("PATH")},
		Stdout: &Head{Max: 4 << 10}, Stderr: &Head{Max: 4 << 10},
	}
}

// gone reports whether pid has exited: no such process, or a zombie that
// nobody reaped yet (it runs no code).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

// readPID waits for the pid the script writes to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	var err error
	if !testwait.Within(10*time.Second, func() bool {
		var b []byte
		var perr error
		b, err = os.ReadFile(path)
		pid, perr = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && perr == nil
	}) {
		t.Fatalf("no pid in %s: %v", path, err)
	}
	return pid
}

// waitGone fails the test unless pid exits within 10s; it kills it then.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	if !testwait.Within(10*time.Second, func() bool { return gone(pid) }) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("%s (pid %d) still runs", what, pid)
	}
}

func TestInputEnvironmentAndDirectory(t *testing.T) {
	t.Setenv("LIVEHOOK_TEST_DAEMON_SECRET", "daemon-only")
	dir := t.TempDir()
	c := sh(`cat; echo; env; pwd; echo oops >&2; exit 3`, dir)
	c.Dir = dir
	c.Env = append(c.Env, "GIVEN=yes")
	c.Stdin = []byte("the request")
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 3 || r.Exit != "exit status 3" || r.Killed != NotKilled {
		t.Errorf("result %+v, want exit status 3, not killed", r)
	}
	out := c.Stdout.(*Head).String()
	for _, want := range []string{"the request\n", "GIVEN=yes\n", "\n" + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "LIVEHOOK_TEST_DAEMON_SECRET") {
		t.Errorf("the daemon's environment reached the program: %q", out)
	}
	if got := c.Stderr.(*Head).String(); got != "oops" {
		t.Errorf("stderr %q, want oops", got)
	}
}

func TestNoEnvironmentIsAnEmptyOne(t *testing.T) {
	t.Setenv("LIVEHOOK_TEST_DAEMON_SECRET", "daemon-only")
	c := sh(`/usr/bin/env`, t.TempDir())
	c.Env = nil
	if _, err := Run(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if out := c.Stdout.(*Head).String(); strings.Contains(out, "LIVEHOOK_TEST_DAEMON_SECRET") {
		t.Errorf("a nil Env inherited the daemon's environment: %q", out)
	}
}

func TestTimeoutKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	c := sh(`sleep 30 & echo $! > "$1/pid"; sleep 30`, dir)
	c.Timeout = 300 * time.Millisecond
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Killed != Timeout || r.Code != -1 || r.Exit != "signal: killed" {
		t.Errorf("result %+v, want killed at the timeout", r)
	}
	waitGone(t, readPID(t, filepath.Join(dir, "pid")), "the grandchild")
}

func TestCancelKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	c := sh(`sleep 30 & echo $! > "$1/pid"; echo started; sleep 30`, dir)
	// Cancel once the script is under way: it says so on stdout.
	c.Stdout = &notify{Head: Head{Max: 1 << 10}, fn: cancel}
	r, err := Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Killed != Cancelled || r.Code != -1 {
		t.Errorf("result %+v, want killed when the context ended", r)
	}
	waitGone(t, readPID(t, filepath.Join(dir, "pid")), "the grandchild")
}

// notify is a Head that calls fn at its first write.
type notify struct {
	Head
	fn   func()
	once bool
}

func (n *notify) Write(p []byte) (int, error) {
	if !n.once {
		n.once = true
		n.fn()
	}
	return n.Head.Write(p)
}

func TestEndedContextStartsNothing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := Run(ctx, sh(`touch "$1/ran"`, dir))
	if err != nil || r.Killed != Cancelled {
		t.Errorf("result %+v, %v; want cancelled", r, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the program ran")
	}
}

// What a program leaves running in its group dies when it exits, even when
// it holds the output pipes.
func TestLeftoversDieWithTheProgram(t *testing.T) {
	dir := t.TempDir()
	r, err := Run(context.Background(), sh(`sleep 30 & echo $! > "$1/pid"; echo done`, dir))
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 0 || r.Killed != NotKilled {
		t.Errorf("result %+v, want exit 0, not killed", r)
	}
	waitGone(t, readPID(t, filepath.Join(dir, "pid")), "the background process")
}

// A process that left the group is not waited for beyond the grace, even
// though it holds the pipes.
func TestEscapedProcessIsNotWaitedFor(t *testing.T) {
	dir := t.TempDir()
	// The script waits for the escape before it exits: the group dies then.
	c := sh(`setsid sh -c 'echo $$ > "$1/pid"; exec sleep 30' sh "$1" &
while [ ! -s "$1/pid" ]; do sleep 0.01; done
echo done`, dir)
	start := time.Now()
	r, err := Run(context.Background(), c)
	took := time.Since(start)
	pid := readPID(t, filepath.Join(dir, "pid"))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 0 || c.Stdout.(*Head).String() != "done" {
		t.Errorf("result %+v, stdout %q; want exit 0 with its output", r, c.Stdout.(*Head).String())
	}
	// The escaped process sleeps 30s: returning near the grace proves it
	// was not waited for. The bound is loose for a loaded machine.
	if took > 15*time.Second {
		t.Errorf("Run returned after %v, want about %v", took, pipeGrace)
	}
}

func TestStopWhenStdoutFull(t *testing.T) {
	c := sh(`exec yes`, t.TempDir())
	c.StopWhenStdoutFull = true
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	out := c.Stdout.(*Head)
	if r.Killed != StdoutFull || !out.Full() || len(out.Bytes()) != 4<<10 {
		t.Errorf("result %+v, %d bytes kept; want killed once stdout was full, 4 KiB kept", r, len(out.Bytes()))
	}
}

// Without StopWhenStdoutFull, output beyond the bound is read and counted.
func TestOutputBeyondTheBoundIsCounted(t *testing.T) {
	c := sh(`head -c 100000 /dev/zero | tr '\0' x; head -c 50000 /dev/zero | tr '\0' y >&2`, t.TempDir())
	r, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 0 {
		t.Fatalf("result %+v, want exit 0", r)
	}
	want := strings.Repeat("x", 4<<10) + fmt.Sprintf(" [%d more bytes dropped]", 100000-4<<10)
	if got := c.Stdout.(*Head).String(); got != want {
		t.Errorf("stdout %.60q… (%d bytes), want 4 KiB and a note of the rest", got, len(got))
	}
	if !c.Stderr.Full() {
		t.Error("stderr dropped nothing")
	}
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name, path, dir, want string
	}{
		{"not in PATH", "livehook-test-no-such-program", "", "executable file not found"},
		{"missing path", "/nonexistent/livehook/hook", "", "no such file or directory"},
		{"missing directory", "/bin/sh", "/nonexistent/livehook", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), Command{Path: tc.path, Dir: tc.dir, Stdout: &Head{}, Stderr: &Head{}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestHeadTail(t *testing.T) {
	h := &HeadTail{Size: 4}
	for _, s := range []string{"ab", "cdef", "ghij", "kl"} {
		h.Write([]byte(s))
	}
	if got, want := h.String(), "abcd\n[… 4 bytes dropped …]\nijkl"; got != want || !h.Full() {
		t.Errorf("String() = %q, Full %v; want %q, full", got, h.Full(), want)
	}
	short := &HeadTail{Size: 4}
	short.Write([]byte("abcdef"))
	if got := short.String(); got != "abcdef" || short.Full() {
		t.Errorf("String() = %q, Full %v; want everything, not full", got, short.Full())
	}
}
