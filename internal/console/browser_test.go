package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/admin"
)

// chromium is Debian's browser (apt-get install -y chromium). Without it
// the browser tests skip, but under CI=true they fail: CI installs it.
const chromium = "/usr/bin/chromium"

// browser starts a headless Chromium for t, in Shanghai's time zone so
// that the localised times differ from UTC.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the browser tests need %s (apt-get install -y chromium): %v", chromium, err)
		}
		t.Skipf("skipping the browser tests: %s is missing (apt-get install -y chromium)", chromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-component-update", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 700), chromedp.Env("TZ=Asia/Shanghai"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser and must not have a timeout: the
	// browser lives as long as its context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return ctx
}

// run runs one action with a time limit.
func run[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	run(t, ctx, what, chromedp.Steps(steps...))
}

// screenshot writes the page to $LIVEHOOK_SCREENSHOTS/name.png, when set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LIVEHOOK_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// byID selects an element by id; job ids hold dots, which a #id selector
// would read as classes.
func byID(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf("[id=%q]", id)) }

func TestBrowserEventToDelivery(t *testing.T) {
	r := newRig(t)
	ctx := browser(t)
	id := r.accept("room1", map[string]any{"note": "<script>alert(1)</script>"})
	bad := r.accept("bad", nil)

	do(t, ctx, "open the events page", chromedp.Navigate(r.srv.URL+"/"), chromedp.WaitVisible(byID("event-"+id)))
	screenshot(t, ctx, "events")
	do(t, ctx, "open the event", chromedp.Click(chromedp.CSS(fmt.Sprintf("[id=%q] a", "event-"+id))),
		chromedp.WaitVisible(byID("job-"+id+".notify.0")))
	screenshot(t, ctx, "event")
	if s := run(t, ctx, "delivery state", chromedp.Text(chromedp.CSS(fmt.Sprintf("[id=%q] .state", "job-"+id+".notify.0")))); s != "delivered" {
		t.Errorf("delivery shows %q, want delivered", s)
	}
	if s := run(t, ctx, "payload", chromedp.Text(chromedp.ID("fields"))); !strings.Contains(s, `"note": "<script>alert(1)</script>"`) {
		t.Errorf("the payload does not read as received:\n%s", s)
	}
	if n := run(t, ctx, "scripts", chromedp.Evaluate[int]("document.scripts.length")); n != 1 {
		t.Errorf("the page runs %d scripts, want only the console's", n)
	}
	// Times read in the viewer's zone, with UTC on hover.
	shown := run(t, ctx, "a time", chromedp.Text(chromedp.CSS("time")))
	hover := run(t, ctx, "its title", chromedp.AttributeValue(chromedp.CSS("time"), "title"))
	if !strings.HasSuffix(hover.Value, " UTC") || shown == hover.Value || !strings.Contains(shown, "GMT+8") {
		t.Errorf("time shows %q with %q on hover; want Shanghai time, UTC on hover", shown, hover.Value)
	}

	// The dead letter, replayed from its page once the service is fixed.
	dead := bad + ".notify.0"
	r.probe.fixed.Store(true)
	do(t, ctx, "replay the dead letter", chromedp.Navigate(r.srv.URL+"/deadletters"),
		chromedp.WaitVisible(byID("dead-"+dead)),
		chromedp.Click(chromedp.CSS(fmt.Sprintf("[id=%q] button", "dead-"+dead))),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if s := run(t, ctx, "notice", chromedp.Text(chromedp.CSS(".notice"))); !strings.Contains(s, dead+" replayed") {
		t.Errorf("after the replay the page says %q", s)
	}
	if j := r.settled(bad).Jobs[0]; j.State != store.Delivered {
		t.Fatalf("the replayed dead letter is %s", j.State)
	}
	do(t, ctx, "see it delivered", chromedp.Navigate(r.srv.URL+"/events/"+bad),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("[id=%q] .state-delivered", "job-"+dead))))
	screenshot(t, ctx, "replayed")

	// On a phone-sized screen nothing but the tables' own frames scrolls
	// sideways.
	do(t, ctx, "phone size", chromedp.EmulateViewport(390, 844), chromedp.Navigate(r.srv.URL+"/events/"+bad),
		chromedp.WaitVisible(chromedp.ID("replay")))
	if w := run(t, ctx, "width", chromedp.Evaluate[int]("document.documentElement.scrollWidth")); w > 390 {
		t.Errorf("the event page is %d px wide on a 390 px phone", w)
	}
	screenshot(t, ctx, "event-phone")
}

func TestBrowserLoginAndCrossSitePost(t *testing.T) {
	const token = "browser-admin-token-0123"
	r := newRig(t)
	ctx := browser(t)
	bad := r.accept("bad", nil)
	dead := bad + ".notify.0"
	guarded := httptest.NewServer(admin.RequireToken(r.srv.Config.Handler, token))
	t.Cleanup(guarded.Close)

	do(t, ctx, "log in", chromedp.Navigate(guarded.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), token), chromedp.Submit(chromedp.CSS(`input[name="token"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav a[aria-current="page"]`)))
	if title := run(t, ctx, "title", chromedp.Title()); title != "Events · livehook" {
		t.Errorf("after logging in the page is %q", title)
	}

	// A page on another origin posts the replay form. The browser sends
	// the session cookie (same site: only the port differs) but says where
	// the request comes from, and the console refuses it.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/deadletters/%s/replay"><input name="csrf" value="guess"><button id="go">win a prize</button></form>`,
			guarded.URL, dead)
	}))
	t.Cleanup(evil.Close)
	do(t, ctx, "a cross-site post", chromedp.Navigate(evil.URL), chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.Search(`//body[contains(., "cross-origin request detected")]`)))
	if j := r.settled(bad).Jobs[0]; j.State != store.Dead {
		t.Errorf("a cross-site post replayed the dead letter: %s", j.State)
	}
	// The same form from the console's own page works.
	do(t, ctx, "replay from the console", chromedp.Navigate(guarded.URL+"/deadletters"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf("[id=%q] button", "dead-"+dead))), chromedp.WaitVisible(chromedp.CSS(".notice")))
}
