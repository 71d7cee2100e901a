package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
)

// TestSendFollowsTheSource: send makes the request the source's sender
// would, to the source's path unless the URL gives one.
func TestSendFollowsTheSource(t *testing.T) {
	file := []byte(`{"stream":"s"}`)
	for _, tt := range []struct {
		name, url, source string
		want              string
	}{
		{"the default", "http://127.0.0.1:8080", "", "POST http://127.0.0.1:8080/callbacks/record"},
		{"a generic source by name", "http://127.0.0.1:8080/", "cam", "POST http://127.0.0.1:8080/events/cam"},
		{"a generic source by path", "http://h:1/events/jobs", "", "POST http://h:1/events/jobs"},
		{"behind a proxy: the URL as given", "https://hooks.example.com/live/cb?x=1", "", "POST https://hooks.example.com/live/cb?x=1"},
	} {
		req, body, err := sendRequest(context.Background(), sourceapi.Default(), tt.url, tt.source, file)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := req.Method + " " + req.URL.String(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
		sent, _ := io.ReadAll(req.Body)
		if string(sent) != string(file) || string(body) != string(file) || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: sent %q (%q) as %q, want the file as JSON", tt.name, sent, body, req.Header.Get("Content-Type"))
		}
	}

	// A source called with a query: its fixture says what to send.
	reg := sourceapi.NewRegistry()
	err := reg.Add(sourceapi.Source{
		Name: "notify", Doc: "stream notifications", Path: "/live/notify", Methods: []string{http.MethodGet},
		Decode: func(*sourceapi.Request) (*event.Event, error) { return &event.Event{}, nil },
		Fixture: func(name string, file []byte) (*sourceapi.Request, error) {
			var params map[string]string
			if err := json.Unmarshal(file, &params); err != nil {
				return nil, err
			}
			q := url.Values{}
			for k, v := range params {
				q.Set(k, v)
			}
			return &sourceapi.Request{Name: name, Query: q}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	req, body, err := sendRequest(context.Background(), reg, "http://127.0.0.1:8080?x=1", "notify", []byte(`{"action":"publish","id":"room42"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := req.Method+" "+req.URL.String(), "GET http://127.0.0.1:8080/live/notify?action=publish&id=room42&x=1"; got != want || len(body) != 0 {
		t.Errorf("%s with body %q, want %s and no body", got, body, want)
	}
	if _, _, err := sendRequest(context.Background(), reg, "http://127.0.0.1:8080", "notify", []byte(`[]`)); err == nil || !strings.HasPrefix(err.Error(), "notify: ") {
		t.Errorf("a file the fixture cannot read: %v", err)
	}
}

func TestTestRefusesAnUnknownSource(t *testing.T) {
	_, stderr, code := runCLI(t, nil, "test", "--source", "a b", filepath.Join("..", "..", "rules.example.yaml"),
		filepath.Join("..", "..", "testdata", "events", "file_flv.json"))
	if code != 2 || !strings.Contains(stderr, `--source "a b": not a source name`) {
		t.Errorf("exit %d, %q", code, stderr)
	}
}

func TestTestDecodesAsTheSource(t *testing.T) {
	stdout, _, code := runCLI(t, nil, "test", "--json", "--source", "cam", filepath.Join("..", "..", "rules.example.yaml"),
		filepath.Join("..", "..", "testdata", "events", "file_flv.json"))
	var rep testReport
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || rep.Event == nil ||
		rep.Event.Source != "cam" || rep.Event.Kind != event.KindEvent {
		t.Errorf("exit %d, %v: %s", code, err, stdout)
	}
}
