package console_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/console"
)

// deadFixture makes nine dead letters: five of hook refused with 400
// (streams "bad"), and for each of two "gone" streams one of hook and one
// of pager refused with 410. It returns the events, oldest first.
func (r *rig) deadFixture() (bad, gone []string) {
	r.t.Helper()
	for range 5 {
		bad = append(bad, r.accept("bad", nil))
	}
	for range 2 {
		gone = append(gone, r.accept("gone", nil))
	}
	return bad, gone
}

var (
	nextLink = regexp.MustCompile(`href="([^"]+)" rel="next"`)
	deadRow  = regexp.MustCompile(`<tr id="dead-([^"]+)">`)
)

// unescape reads a URL out of an HTML attribute.
func unescape(s string) string { return html.UnescapeString(s) }

// pageThrough follows a listing's cursor from path and returns the ids row
// finds on each page, in order, and how many pages. Every next page's link
// must carry a cursor and keep path's values of the filters in keep.
func (r *rig) pageThrough(path string, row *regexp.Regexp, keep ...string) (ids []string, pages int) {
	r.t.Helper()
	first, err := url.Parse(path)
	if err != nil {
		r.t.Fatal(err)
	}
	for ; ; pages++ {
		if pages > 10 {
			r.t.Fatal("paging does not end")
		}
		page := r.get(path, http.StatusOK)
		for _, m := range row.FindAllStringSubmatch(page, -1) {
			ids = append(ids, m[1])
		}
		m := nextLink.FindStringSubmatch(page)
		if m == nil {
			return ids, pages + 1
		}
		path = unescape(m[1])
		u, err := url.Parse(path)
		if err != nil {
			r.t.Fatal(err)
		}
		q := u.Query()
		for _, k := range keep {
			if q.Get(k) != first.Query().Get(k) {
				r.t.Errorf("the next page's link drops the filter %s: %s", k, path)
			}
		}
		if q.Get("before") == "" {
			r.t.Errorf("the next page's link has no cursor: %s", path)
		}
	}
}

// pageDead pages through the dead-letters page from path.
func (r *rig) pageDead(path string) (ids []string, pages int) {
	r.t.Helper()
	return r.pageThrough(path, deadRow)
}

func TestDeadLettersPagingAndGroups(t *testing.T) {
	r := newRig(t)
	bad, gone := r.deadFixture()
	var want []string // newest first, as the store lists them: by job id
	for _, id := range append(slices.Clone(bad), gone...) {
		want = append(want, id+".notify.0")
	}
	for _, id := range gone {
		want = append(want, id+".page-gone.0")
	}
	slices.Sort(want)
	slices.Reverse(want)

	got, pages := r.pageDead("/deadletters?limit=2")
	if !slices.Equal(got, want) || pages != 5 {
		t.Errorf("2 a page: %d pages showing %v\nwant 5 pages showing each once, newest first: %v", pages, got, want)
	}
	// Paging keeps the filter.
	got, _ = r.pageDead("/deadletters?limit=1&action=pager")
	if wantPager := []string{gone[1] + ".page-gone.0", gone[0] + ".page-gone.0"}; !slices.Equal(got, wantPager) {
		t.Errorf("pager's dead letters, 1 a page: %v, want %v", got, wantPager)
	}

	page := r.get("/deadletters", http.StatusOK)
	for _, want := range []string{
		"<td>hook</td>\n<td>permanent</td>\n<td>HTTP 400: &lt;b&gt;no such channel&lt;/b&gt;</td>\n<td>5</td>",
		"<td>hook</td>\n<td>permanent</td>\n<td>HTTP 410: channel gone</td>\n<td>2</td>",
		"<td>pager</td>\n<td>permanent</td>\n<td>HTTP 410: channel gone</td>\n<td>2</td>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the groups lack %q:\n%s", want, page)
		}
	}
	// A group's link shows exactly its dead letters.
	show := regexp.MustCompile(`<td>pager</td>\n<td>permanent</td>\n<td>[^<]*</td>\n<td>2</td>\n<td>.*</td>\n<td><a href="([^"]+)">Show</a>`).FindStringSubmatch(page)
	if show == nil {
		t.Fatalf("no link to pager's group:\n%s", page)
	}
	got, _ = r.pageDead(unescape(show[1]))
	if len(got) != 2 || !strings.HasSuffix(got[0], ".page-gone.0") || !strings.HasSuffix(got[1], ".page-gone.0") {
		t.Errorf("pager's group shows %v", got)
	}
	if got, _ := r.pageDead("/deadletters?action=hook&error=" + url.QueryEscape("HTTP 410: channel gone")); len(got) != 2 {
		t.Errorf("hook's 410s: %v", got)
	}
	// By time: all were created in the last minutes, none before.
	past := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
	if got, _ := r.pageDead("/deadletters?from=" + past); len(got) != 9 {
		t.Errorf("created from an hour ago: %d dead letters, want 9", len(got))
	}
	if page := r.get("/deadletters?to="+past, http.StatusOK); !strings.Contains(page, "No dead letters match this filter") || strings.Contains(page, `id="groups"`) {
		t.Errorf("created before an hour ago:\n%s", page)
	}
	if page := r.get("/deadletters?from=yesterday", http.StatusBadRequest); !strings.Contains(page, "from: want a time like") {
		t.Errorf("a bad time:\n%s", page)
	}
}

// previewToken reads the preview page's count and the form that runs it.
func previewOf(t *testing.T, page string) (count, token string) {
	t.Helper()
	c := regexp.MustCompile(`id="preview-count" class="notice"><strong>(\d+)</strong>`).FindStringSubmatch(page)
	p := regexp.MustCompile(`name="preview" value="([^"]+)"`).FindStringSubmatch(page)
	if c == nil || p == nil {
		t.Fatalf("no count or form on the preview:\n%s", page)
	}
	return c[1], p[1]
}

func TestBulkReplayRunsWhatThePreviewShowed(t *testing.T) {
	r := newRig(t)
	bad, gone := r.deadFixture()
	filter := "action=hook&error=" + url.QueryEscape("HTTP 410: channel gone")
	page := r.get("/deadletters?"+filter, http.StatusOK)
	link := regexp.MustCompile(`href="([^"]+)" id="bulk-replay"`).FindStringSubmatch(page)
	if link == nil {
		t.Fatalf("no bulk replay on the filtered page:\n%s", page)
	}
	preview := r.get(unescape(link[1]), http.StatusOK)
	count, token := previewOf(t, preview)
	if count != "2" || !strings.Contains(preview, "dead letters will be replayed") {
		t.Fatalf("the preview says %s:\n%s", count, preview)
	}
	for _, id := range gone {
		if !strings.Contains(preview, "<code>"+id+".notify.0</code>") {
			t.Errorf("the preview lacks %s", id)
		}
	}
	// A dead letter of the same group arriving after the preview is not
	// swept in.
	later := r.accept("gone", nil)
	r.probe.fixed.Store(true)
	csrfToken := csrf(t, preview)
	res := r.post("/deadletters/bulk", url.Values{"csrf": {csrfToken}, "op": {"replay"}, "preview": {token}}, nil, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/deadletters?bulk=replay&n=2&of=2" {
		t.Errorf("the bulk replay redirects to %q", loc)
	}
	for _, id := range gone {
		d := r.settled(id)
		for _, j := range d.Jobs {
			if want := map[string]string{"notify": store.Delivered, "page-gone": store.Dead}[j.Rule]; j.State != want {
				t.Errorf("%s after the bulk replay: %s, want %s", j.ID, j.State, want)
			}
		}
	}
	if d := r.settled(later); d.Jobs[0].State != store.Dead {
		t.Errorf("the dead letter that came after the preview was replayed: %+v", d.Jobs[0])
	}
	if d := r.settled(bad[0]); d.Jobs[0].State != store.Dead {
		t.Errorf("another group's dead letter was replayed: %+v", d.Jobs[0])
	}
	if page := r.get(res.Header.Get("Location"), http.StatusOK); !strings.Contains(page, "Replayed 2 of the 2 dead letters previewed") {
		t.Errorf("after the bulk replay:\n%s", page)
	}
	// A preview runs once.
	if page := bodyOf(t, r.post("/deadletters/bulk", url.Values{"csrf": {csrfToken}, "op": {"replay"}, "preview": {token}}, nil, http.StatusConflict)); !strings.Contains(page, "preview again") {
		t.Errorf("a preview run twice:\n%s", page)
	}
	// Without the page's token nothing runs.
	_, token = previewOf(t, r.get("/deadletters/preview?op=replay&action=hook", http.StatusOK))
	r.post("/deadletters/bulk", url.Values{"csrf": {"forged"}, "op": {"replay"}, "preview": {token}}, nil, http.StatusForbidden)
	r.post("/deadletters/bulk", url.Values{"csrf": {csrfToken}, "op": {"delete"}, "preview": {token}}, nil, http.StatusConflict)
	if d := r.settled(bad[0]); d.Jobs[0].State != store.Dead {
		t.Errorf("a refused bulk replay ran: %+v", d.Jobs[0])
	}
	r.get("/deadletters/preview?op=explode", http.StatusBadRequest)
	if page := r.get("/deadletters/preview?op=replay&action=nosuch", http.StatusOK); !strings.Contains(page, "nothing to do") || strings.Contains(page, `name="preview"`) {
		t.Errorf("a preview of nothing:\n%s", page)
	}
}

func TestDeleteDeadLetters(t *testing.T) {
	r := newRig(t)
	bad, _ := r.deadFixture()
	page := r.get("/deadletters", http.StatusOK)
	token := csrf(t, page)
	one := bad[0] + ".notify.0"
	if !strings.Contains(page, `action="/deadletters/`+one+`/delete"`) {
		t.Fatalf("no delete button for %s:\n%s", one, page)
	}
	res := r.post("/deadletters/"+one+"/delete", url.Values{"csrf": {token}}, nil, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/deadletters?deleted="+url.QueryEscape(one) {
		t.Errorf("delete redirects to %q", loc)
	}
	if page := r.get(res.Header.Get("Location"), http.StatusOK); !strings.Contains(page, "Dead letter "+one+" deleted.") || strings.Contains(page, `id="dead-`+one+`"`) {
		t.Errorf("after the delete:\n%s", page)
	}
	if d, err := r.eng.Event(bad[0]); err != nil || len(d.Jobs) != 0 {
		t.Errorf("the event of the deleted dead letter: %+v, %v; want it without the job", d, err)
	}
	r.post("/deadletters/"+one+"/delete", url.Values{"csrf": {token}}, nil, http.StatusConflict)
	r.post("/deadletters/"+bad[1]+".notify.0/delete", url.Values{"csrf": {"forged"}}, nil, http.StatusForbidden)

	// A bulk delete of pager's: exactly the two.
	count, preview := previewOf(t, r.get("/deadletters/preview?op=delete&action=pager", http.StatusOK))
	if count != "2" {
		t.Fatalf("the delete preview counts %s, want 2", count)
	}
	res = r.post("/deadletters/bulk", url.Values{"csrf": {token}, "op": {"delete"}, "preview": {preview}}, nil, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/deadletters?bulk=delete&n=2&of=2" {
		t.Errorf("the bulk delete redirects to %q", loc)
	}
	got, _ := r.pageDead("/deadletters?limit=1000")
	if len(got) != 6 || slices.ContainsFunc(got, func(id string) bool { return strings.HasSuffix(id, ".page-gone.0") }) {
		t.Errorf("after deleting one of hook's and pager's two: %v", got)
	}
	st, err := r.store.Stats(t.Context())
	if err != nil || st.Dead != 6 {
		t.Errorf("the store counts %d dead letters (%v), want 6", st.Dead, err)
	}
}

func TestReadOnlyDeadLetters(t *testing.T) {
	r := newRig(t, func(o *console.Options) { o.ReadOnly = true })
	bad, _ := r.deadFixture()
	one := bad[0] + ".notify.0"
	preview := r.get("/deadletters/preview?op=delete&action=hook", http.StatusOK)
	if !strings.Contains(preview, "<strong>7</strong> dead letters will be deleted") || strings.Contains(preview, "<form method=\"post\"") || !strings.Contains(preview, "read-only") {
		t.Errorf("a read-only preview offers to run:\n%s", preview)
	}
	for _, path := range []string{"/deadletters/" + one + "/delete", "/deadletters/bulk"} {
		if page := bodyOf(t, r.post(path, url.Values{"op": {"delete"}}, nil, http.StatusForbidden)); !strings.Contains(page, "read-only") {
			t.Errorf("read-only POST %s:\n%s", path, page)
		}
	}
	if page := r.get("/deadletters", http.StatusOK); strings.Contains(page, "bulk-replay") || strings.Contains(page, "<form method=\"post\"") {
		t.Errorf("the read-only page offers changes:\n%s", page)
	}
	if d := r.settled(bad[0]); len(d.Jobs) != 1 || d.Jobs[0].State != store.Dead {
		t.Errorf("a read-only console deleted: %+v", d.Jobs)
	}
}
