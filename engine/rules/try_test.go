package rules

import (
	"reflect"
	"testing"
	"time"

	"github.com/livehook/livehook/engine/event"
)

func TestTryCondition(t *testing.T) {
	ev := &event.Event{Stream: "room1", Kind: "file", Domain: "play.example.com",
		Payload: map[string]any{"code": int64(3), "deep": map[string]any{"x": "y"}}}
	noon := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, src string
		match     bool
		problem   *Problem
		reads     []Read
	}{
		{name: "no condition matches", src: "  ", match: true},
		{name: "holds", src: `stream == "room1" && payload.code > 2`, match: true,
			reads: []Read{{Path: "stream", Value: "room1"}, {Path: "payload.code", Value: int64(3)}}},
		{name: "does not hold", src: `kind == "status" || domain startsWith "pub."`,
			reads: []Read{{Path: "kind", Value: "file"}, {Path: "domain", Value: "play.example.com"}}},
		{name: "a field read twice is shown once, the longest chain",
			src: `payload.deep.x == "y" && stream != "" && stream != "x" || payload.missing.z == 1`, match: true,
			reads: []Read{{Path: "payload.deep.x", Value: "y"}, {Path: "stream", Value: "room1"},
				{Path: "payload.missing.z", Error: "cannot fetch z from <nil>"}}},
		{name: "an incomplete condition", src: "stream ==", problem: &Problem{Line: 1, Col: 9, Msg: "unexpected token EOF"}},
		{name: "an unknown field on the second line", src: "kind == \"file\" &&\n  nosuch > 1",
			problem: &Problem{Line: 2, Col: 3, Msg: "unknown name nosuch"}},
		{name: "not a boolean", src: `stream`, problem: &Problem{Line: 1, Col: 1, Msg: "expected bool, but got string"}},
		{name: "fails on the event", src: `int(payload.deep) > 0`, problem: &Problem{Msg: "invalid operation: int(map[string]interface {})"},
			reads: []Read{{Path: "payload.deep", Value: map[string]any{"x": "y"}}}},
		{name: "nothing is expanded", src: `"${LH_TRY_SECRET}" == stream`, reads: []Read{{Path: "stream", Value: "room1"}}},
		{name: "now() reads the given clock", src: `now().Hour() == 12`, match: true},
	}
	t.Setenv("LH_TRY_SECRET", "room1")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := TryCondition(tc.src, ev, func() time.Time { return noon })
			if got.Match != tc.match || !reflect.DeepEqual(got.Problem, tc.problem) || !reflect.DeepEqual(got.Reads, tc.reads) {
				t.Errorf("TryCondition(%q)\n got match %v, problem %+v, reads %+v\nwant match %v, problem %+v, reads %+v",
					tc.src, got.Match, got.Problem, got.Reads, tc.match, tc.problem, tc.reads)
			}
		})
	}
}

func FuzzTryCondition(f *testing.F) {
	for _, s := range []string{`stream == "a"`, `payload.a.b > 1 && now().Year() > 2000`, "kind ==", `[1,2][5] == 1`, `payload?.x ?? "y"`} {
		f.Add(s)
	}
	ev := &event.Event{Stream: "s", Payload: map[string]any{"a": map[string]any{"b": int64(2)}}}
	f.Fuzz(func(t *testing.T, src string) {
		got := TryCondition(src, ev, time.Now)
		if got.Problem != nil && got.Match {
			t.Errorf("%q: a problem and a match: %+v", src, got)
		}
	})
}
