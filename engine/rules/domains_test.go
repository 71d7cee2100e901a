package rules_test

import (
	"maps"
	"testing"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/rules"
)

func TestDomainsMapIngestToStreaming(t *testing.T) {
	set := loadString(t, `domains:
  push.example.com: play.example.com
  Push-EU.Example.com: Play-EU.example.com
rules:
  - name: r
    do: [{type: log}]
`)
	if want := map[string]string{"push.example.com": "play.example.com", "push-eu.example.com": "play-eu.example.com"}; !maps.Equal(set.Domains, want) {
		t.Fatalf("Domains = %v, want %v (lower case)", set.Domains, want)
	}
	for _, tt := range []struct {
		name                 string
		in                   event.Event
		domain, ingestDomain string
	}{
		{"a publish names the ingest domain", event.Event{Domain: "push.example.com", IngestDomain: "push.example.com"}, "play.example.com", "push.example.com"},
		{"in any case", event.Event{Domain: "PUSH-eu.example.com"}, "play-eu.example.com", "PUSH-eu.example.com"},
		{"a recording names the streaming domain", event.Event{Domain: "play.example.com"}, "play.example.com", ""},
		{"a domain the map does not know", event.Event{Domain: "other.example.com", IngestDomain: "other.example.com"}, "other.example.com", "other.example.com"},
		{"no domain", event.Event{}, "", ""},
	} {
		ev := tt.in
		set.MapDomain(&ev)
		if ev.Domain != tt.domain || ev.IngestDomain != tt.ingestDomain {
			t.Errorf("%s: domain %q, ingest_domain %q; want %q, %q", tt.name, ev.Domain, ev.IngestDomain, tt.domain, tt.ingestDomain)
		}
	}
}

func TestMapDomainWithoutAMap(t *testing.T) {
	ev := event.Event{Domain: "push.example.com"}
	var none *rules.Set
	none.MapDomain(&ev) // the engine before its first load
	loadString(t, "rules:\n  - name: r\n    do: [{type: log}]\n").MapDomain(&ev)
	if ev.Domain != "push.example.com" || ev.IngestDomain != "" {
		t.Errorf("without domains: the event changed: %+v", ev)
	}
}

// TestConditionsSeeTheCallbackFields: the fields of the Live callback
// family are typed in conditions, and throttles can key on them.
func TestConditionsSeeTheCallbackFields(t *testing.T) {
	set := loadString(t, `rules:
  - name: big-publish
    when: kind == "stream" && event == "publish" && width >= 1280 && time > 0 && ingest_domain != "" && client_ip != "" && node != ""
    throttle: {by: [ingest_domain, stream], window: 1m}
    do: [{type: log}]
  - name: blocked
    when: kind == "moderation" && suggestion == "block" && rate > 90.5 && label != "" && scene != ""
    do: [{type: log}]
  - name: relay-down
    when: kind == "relay" && status == "offline" && reason == "PullStreamFailed" && task_id != ""
    do: [{type: log}]
  - name: vod-failed
    when: kind == "vod" && status == "fail" && video_id != ""
    do: [{type: log}]
  - name: snapshot
    when: kind == "snapshot" && oss_bucket != "" && oss_endpoint != "" && height == 0
    do: [{type: log}]
`)
	var m rules.Matcher
	for _, tt := range []struct {
		ev   event.Event
		want string
	}{
		{event.Event{Kind: event.KindStream, Event: "publish", Width: 1920, Time: 1, IngestDomain: "p", ClientIP: "ip", Node: "n"}, "big-publish"},
		{event.Event{Kind: event.KindModeration, Suggestion: "block", Rate: 99.9, Label: "porn", Scene: "porn"}, "blocked"},
		{event.Event{Kind: event.KindRelay, Status: "offline", Reason: "PullStreamFailed", TaskID: "t"}, "relay-down"},
		{event.Event{Kind: event.KindVOD, Status: "fail", VideoID: "v"}, "vod-failed"},
		{event.Event{Kind: event.KindSnapshot, OSSBucket: "b", OSSEndpoint: "e"}, "snapshot"},
	} {
		matched, errs := m.Match(set, &tt.ev)
		if len(errs) > 0 || len(matched) != 1 || matched[0].Name != tt.want {
			t.Errorf("%+v: matched %v, errors %v; want %s", tt.ev, matched, errs, tt.want)
		}
	}
}
