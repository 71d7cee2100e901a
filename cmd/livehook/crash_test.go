package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livehook/livehook/internal/testwait"
)

// buildBinary builds the livehook command once per test run.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "livehook-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "livehook")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// binaryDaemon is the real daemon running as a subprocess.
type binaryDaemon struct {
	cmd    *exec.Cmd
	listen string        // the callback port's host:port
	admin  string        // the admin listener's base URL
	logs   *bytes.Buffer // what it writes
}

// startBinary runs the real daemon as a subprocess and waits until it answers.
func startBinary(t testing.TB, bin string, args ...string) binaryDaemon {
	t.Helper()
	listen, admin := freePort(t), freePort(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, append([]string{"serve", "--listen", listen, "--admin", admin, "--log-format", "json"}, args...)...)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !testwait.Within(15*time.Second, func() bool {
		resp, err := http.Post("http://"+listen+"/nowhere", "", nil)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the daemon did not come up:\n%s", logs.String())
	}
	return binaryDaemon{cmd: cmd, listen: listen, admin: "http://" + admin, logs: &logs}
}

// stop sends sig to the daemon and waits for it to exit: SIGKILL for a
// crash, SIGTERM for a clean stop, after which its log is complete.
func (d binaryDaemon) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()
}

// callback posts a record callback to the daemon and returns the status
// (0 when no answer came) and the event id it answered.
func (d binaryDaemon) callback(client *http.Client, body []byte) (int, string) {
	resp, err := client.Post("http://"+d.listen+"/callbacks/record", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var reply struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	return resp.StatusCode, reply.ID
}

// TestKill9LosesNoAcceptedCallback streams callbacks at the real binary,
// kills it with SIGKILL mid-stream, restarts it on the same data, and
// checks that every callback answered 200 was delivered at least once.
func TestKill9LosesNoAcceptedCallback(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	data := t.TempDir()
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rulesPath, webhookRules(rc.URL, "{ concurrency: 4, backoff: 50ms, max_backoff: 500ms }"))
	args := []string{"--rules", rulesPath, "--data", data}

	first := startBinary(t, bin, args...)
	const senders = 16
	var (
		mu       sync.Mutex
		accepted = map[string]bool{} // uris answered 200
		wg       sync.WaitGroup
	)
	killed := make(chan struct{})
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				uri := fmt.Sprintf("live/room1/%02d-%05d.flv", s, i)
				resp, err := client.Post("http://"+first.listen+"/callbacks/record", "application/json", bytes.NewReader(fileCallback(uri)))
				if err != nil {
					return // the daemon is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					accepted[uri] = true
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number of callbacks are in and deliveries are flowing.
	var n int
	if !testwait.Within(20*time.Second, func() bool {
		mu.Lock()
		n = len(accepted)
		mu.Unlock()
		return n >= 1500 && len(rc.calls()) >= 200
	}) {
		t.Fatalf("only %d callbacks accepted and %d delivered in 20s:\n%s", n, len(rc.calls()), first.logs.String())
	}
	first.stop(t, syscall.SIGKILL)
	close(killed)
	wg.Wait()
	deliveredBeforeKill := len(rc.calls())

	second := startBinary(t, bin, args...)
	mu.Lock()
	want := len(accepted)
	mu.Unlock()
	perURI := func() map[string]int {
		seen := map[string]int{}
		for _, c := range rc.calls() {
			seen[c.Event.URI]++
		}
		return seen
	}
	var missing int
	if !testwait.Within(60*time.Second, func() bool {
		seen := perURI()
		missing = 0
		for uri := range accepted {
			if seen[uri] == 0 {
				missing++
			}
		}
		return missing == 0
	}) {
		t.Fatalf("%d of %d accepted callbacks never delivered after the restart", missing, want)
	}
	// Drained, the restarted daemon has nothing left that could deliver
	// once more: only now can the duplicates be counted.
	waitDrainedAt(t, second.admin, "")
	dups := 0
	for _, n := range perURI() {
		dups += n - 1
	}
	// Only attempts in flight at the kill may run twice: at most the
	// action's concurrency.
	if dups > 4 {
		t.Errorf("%d duplicate deliveries, want at most 4 (the deliveries in flight at the kill)", dups)
	}
	t.Logf("%d callbacks accepted, %d delivered before the kill, all delivered after the restart, %d duplicates", want, deliveredBeforeKill, dups)
}
