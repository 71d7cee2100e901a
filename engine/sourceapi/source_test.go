package sourceapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
)

func decodeNothing(*sourceapi.Request) (*event.Event, error) { return &event.Event{}, nil }

func fixed(name, path string) sourceapi.Source {
	return sourceapi.Source{Name: name, Doc: name + " callbacks", Path: path, Methods: []string{http.MethodPost}, Decode: decodeNothing}
}

func registry(t *testing.T, ss ...sourceapi.Source) *sourceapi.Registry {
	t.Helper()
	r := sourceapi.NewRegistry()
	for _, s := range ss {
		if err := r.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestAddRefusesWhatCouldNotBeRouted(t *testing.T) {
	r := registry(t, fixed("rec", "/callbacks/record"), fixed("ev", "/events/{source}"))
	noDecode := fixed("d", "/d")
	noDecode.Decode = nil
	for _, tt := range []struct {
		name string
		s    sourceapi.Source
		want string
	}{
		{"a name taken", fixed("rec", "/other"), "already registered"},
		{"a path taken", fixed("rec2", "/callbacks/record"), "path /callbacks/record is already rec's"},
		{"a second family", fixed("ev2", "/hooks/{source}"), "ev already names sources by path"},
		{"no name", fixed("", "/x"), "want a name"},
		{"a name that is no source name", fixed("a b", "/x"), "want a name"},
		{"a relative path", fixed("x", "x"), "want an absolute path"},
		{"a name mark inside the path", fixed("x", "/a/{source}/b"), "ending in /{source}"},
		{"a name mark inside a segment", fixed("x", "/a-{source}"), "ending in /{source}"},
		{"no decoder", noDecode, "Doc, Methods and Decode are required"},
	} {
		if err := r.Add(tt.s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Add = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if n := len(r.All()); n != 2 {
		t.Errorf("refused descriptors were kept: %d sources", n)
	}
}

func TestRouteAndLookup(t *testing.T) {
	r := registry(t, fixed("rec", "/callbacks/record"), fixed("ev", "/events/{source}"))
	for _, tt := range []struct {
		path, src, name string
		ok              bool
	}{
		{"/callbacks/record", "rec", "rec", true},
		{"/events/cam-1.room_2", "ev", "cam-1.room_2", true},
		{"/events/ev", "ev", "ev", true}, // the family's own name is an ordinary source of it
		{"/events/rec", "ev", "rec", false},
		{"/events/", "ev", "", false},
		{"/events/a/b", "ev", "a/b", false},
		{"/events/" + strings.Repeat("a", 65), "ev", strings.Repeat("a", 65), false},
		{"/callbacks/record/", "", "", false},
		{"/", "", "", false},
	} {
		s, name, ok := r.Route(tt.path)
		got := ""
		if s != nil {
			got = s.Name
		}
		if got != tt.src || name != tt.name || ok != tt.ok {
			t.Errorf("Route(%q) = %q, %q, %v; want %q, %q, %v", tt.path, got, name, ok, tt.src, tt.name, tt.ok)
		}
	}
	for name, want := range map[string]string{"rec": "rec", "cam": "ev", "plugin.kit": "ev", "a b": ""} {
		got := ""
		if s, ok := r.Lookup(name); ok {
			got = s.Name
		}
		if got != want {
			t.Errorf("Lookup(%q) = %q, want %q", name, got, want)
		}
	}
	if s, ok := sourceapi.NewRegistry().Lookup("cam"); ok {
		t.Errorf("an empty registry found %q", s.Name)
	}
}

func TestDescriptorDefaults(t *testing.T) {
	s := fixed("rec", "/callbacks/record")
	ev := &event.Event{Kind: event.KindStatus}
	w := sourceapi.Windows{File: 24 * time.Hour, Status: 5 * time.Minute}
	if got := s.DedupeKey(&sourceapi.Request{}, ev); got != "" {
		t.Errorf("without Identity: key %q, want none", got)
	}
	if got := s.DedupeWindow(ev, w); got != w.File {
		t.Errorf("without Window: %v, want the file window", got)
	}
	if got := s.MetricLabel(); got != "rec" {
		t.Errorf("without Label: %q, want the name", got)
	}
	if got, err := json.Marshal(s.Answer(ev, "01H")); err != nil || string(got) != `{"id":"01H","ok":true}` {
		t.Errorf("without Reply: %s (%v), want {\"id\":\"01H\",\"ok\":true}", got, err)
	}
	req, err := s.FromFile("rec", []byte(`{"a":1}`))
	if err != nil || req.Name != "rec" || string(req.Body) != `{"a":1}` || req.Header.Get("Content-Type") != "application/json" || req.Query != nil {
		t.Errorf("without Fixture: %+v, %v; want the file as a JSON body", req, err)
	}
	fam := fixed("ev", "/events/{source}")
	if !fam.Family() || s.Family() || fam.PathFor("cam") != "/events/cam" || s.PathFor("x") != "/callbacks/record" {
		t.Errorf("paths: family %v/%v, %q, %q", fam.Family(), s.Family(), fam.PathFor("cam"), s.PathFor("x"))
	}
	if !s.Allows(http.MethodPost) || s.Allows(http.MethodGet) {
		t.Errorf("Allows does not follow Methods %v", s.Methods)
	}
}

func TestKeyPartsDoNotRunTogether(t *testing.T) {
	if sourceapi.Key("ab", "c") == sourceapi.Key("a", "bc") {
		t.Error("Key(ab, c) == Key(a, bc)")
	}
}
