package oss

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livehook/livehook/actions/actiontest"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
)

const (
	testAK     = "LTAI5tTestKeyId0001"
	testSK     = "s3cr3t-OSS-key-never-shown-0001"
	testRegion = "cn-shanghai"
	// The official sample recording: keys contain ':'.
	seedURI = actiontest.SeedURI
	mp4URI  = "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.mp4"
)

// instanceYAML points an instance at the fake with the given credentials.
func instanceYAML(endpoint, ak, sk, extra string) string {
	return fmt.Sprintf(`
region: %s
endpoint: %s
bucket: '{{ if eq .domain "live.aliyunlive.com" }}rec-live{{ else }}rec-other{{ end }}'
access_key_id: %s
access_key_secret: %s
timeout: 2s
%s`, testRegion, endpoint, ak, sk, extra)
}

func mustOpen(t *testing.T, src string) actionapi.Instance {
	t.Helper()
	inst, err := open(actiontest.Settings(t, "transcode", "oss", src))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

func TestDeliver(t *testing.T) {
	const convert = "video/convert,f_mp4,vcodec_h264,fps_25,acodec_aac,ab_128000"
	cases := []struct {
		name       string
		localhost  bool // address the fake as localhost rather than 127.0.0.1
		with       string
		wantPlan   map[string]any // Info entries
		wantCall   ossCall        // what the fake decoded
		wantIDKeys []string
	}{
		{
			name: "async convert flv to mp4 beside it, with notify",
			with: `
process: ` + convert + `
save_as: { object: '{{ .uri | trimSuffix ".flv" }}.mp4' }
notify_topic: livehook-jobs`,
			wantPlan: map[string]any{
				"mode":    "async",
				"save_as": "oss://rec-live/" + mp4URI,
				"process": convert + "|sys/saveas,o_" + b64url(mp4URI) + "/notify,topic_" + b64url("livehook-jobs"),
			},
			wantCall: ossCall{Param: "x-oss-async-process", Bucket: "rec-live", Key: seedURI, Base: convert,
				HasSaveAs: true, SaveObject: mp4URI, Topic: "livehook-jobs"},
			wantIDKeys: []string{"EventId", "RequestId", "TaskId"},
		},
		{
			name:      "async convert into another bucket over a localhost endpoint",
			localhost: true,
			with: `
process: video/convert,f_mp4,vcodec_h265,s_1280x
save_as: { bucket: 'vod-{{ .app }}', object: 'mp4/{{ .stream }}/{{ .start_time }}.mp4' }`,
			wantPlan: map[string]any{
				"mode":    "async",
				"save_as": "oss://vod-live/mp4/hello/1488985786.mp4",
				"process": "video/convert,f_mp4,vcodec_h265,s_1280x|sys/saveas,b_" + b64url("vod-live") + ",o_" + b64url("mp4/hello/1488985786.mp4"),
			},
			wantCall: ossCall{Param: "x-oss-async-process", Bucket: "rec-live", Key: seedURI, Base: "video/convert,f_mp4,vcodec_h265,s_1280x",
				HasSaveAs: true, HasSaveBucket: true, SaveBucket: "vod-live", SaveObject: "mp4/hello/1488985786.mp4"},
			wantIDKeys: []string{"EventId", "RequestId", "TaskId"},
		},
		{
			name: "sync image resize with saveas",
			with: `
mode: sync
object: 'snapshots/{{ .stream }}/latest.jpg'
process: image/resize,w_320
save_as: { object: 'thumbs/{{ .stream }}.jpg' }`,
			wantPlan: map[string]any{
				"mode":    "sync",
				"save_as": "oss://rec-live/thumbs/hello.jpg",
				"process": "image/resize,w_320|sys/saveas,o_" + b64url("thumbs/hello.jpg"),
			},
			wantCall: ossCall{Param: "x-oss-process", Bucket: "rec-live", Key: "snapshots/hello/latest.jpg", Base: "image/resize,w_320",
				HasSaveAs: true, SaveObject: "thumbs/hello.jpg"},
			wantIDKeys: []string{"RequestId", "bucket", "fileSize", "object", "status"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOSS(t, testAK, testSK, testRegion)
			endpoint := f.URL
			if tc.localhost {
				endpoint = strings.Replace(endpoint, "127.0.0.1", "localhost", 1)
			}
			st := actiontest.Step(t, mustOpen(t, instanceYAML(endpoint, testAK, testSK, "")), tc.with)
			plan, err := st.Plan(actionapi.Input{Event: actiontest.SeedEvent(t), Rule: "transcode-flv"})
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if plan.Method != http.MethodPost {
				t.Errorf("Method = %q, want POST", plan.Method)
			}
			if want := "oss://rec-live/" + tc.wantCall.Key; plan.Target != want {
				t.Errorf("Target = %q, want %q", plan.Target, want)
			}
			if plan.Info["endpoint"] != endpoint {
				t.Errorf("Info[endpoint] = %v, want %s", plan.Info["endpoint"], endpoint)
			}
			for k, want := range tc.wantPlan {
				if plan.Info[k] != want {
					t.Errorf("Info[%s] = %v, want %v", k, plan.Info[k], want)
				}
			}
			if want := tc.wantCall.Param + "=" + tc.wantPlan["process"].(string); plan.Body != want {
				t.Errorf("Body = %v, want %s", plan.Body, want)
			}

			res := st.Do(context.Background(), plan)
			if res.Outcome != actionapi.Delivered {
				t.Fatalf("Do = %v %q (err %v), want delivered", res.Outcome, res.Detail, res.Err)
			}
			calls := f.Calls()
			if len(calls) != 1 {
				t.Fatalf("fake saw %d requests, want 1", len(calls))
			}
			got := calls[0]
			want := tc.wantCall
			want.RequestID, want.TaskID, want.EventID = got.RequestID, got.TaskID, got.EventID
			want.Process = tc.wantPlan["process"].(string)
			if got != want {
				t.Errorf("fake decoded\n %+v\nwant\n %+v", got, want)
			}
			if strings.Join(slices.Sorted(maps.Keys(res.IDs)), ",") != strings.Join(tc.wantIDKeys, ",") {
				t.Errorf("IDs = %v, want keys %v", res.IDs, tc.wantIDKeys)
			}
			if res.IDs["RequestId"] != got.RequestID {
				t.Errorf("IDs[RequestId] = %q, want %q", res.IDs["RequestId"], got.RequestID)
			}
			if tc.wantCall.Param == "x-oss-async-process" {
				if res.IDs["TaskId"] != got.TaskID || res.IDs["EventId"] != got.EventID {
					t.Errorf("IDs = %v, want TaskId %s EventId %s", res.IDs, got.TaskID, got.EventID)
				}
				if !strings.Contains(res.Detail, got.TaskID) {
					t.Errorf("Detail %q does not name the task", res.Detail)
				}
			} else if res.IDs["object"] != tc.wantCall.SaveObject || res.IDs["status"] != "OK" || res.IDs["fileSize"] != "21839" {
				t.Errorf("IDs = %v, want the saved object, status OK and fileSize 21839", res.IDs)
			}
			assertNoSecret(t, plan, res)
		})
	}
}

// assertNoSecret checks the secret is nowhere a user or a log can see it.
func assertNoSecret(t *testing.T, plan actionapi.Plan, res actionapi.Result) {
	t.Helper()
	js, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{"plan": string(js), "detail": res.Detail, "ids": fmt.Sprint(res.IDs)}
	if res.Err != nil {
		texts["error"] = res.Err.Error()
	}
	for where, s := range texts {
		if strings.Contains(s, testSK) || strings.Contains(s, "wrong-secret") {
			t.Errorf("secret leaked into %s: %s", where, s)
		}
	}
}

func TestFailures(t *testing.T) {
	xmlError := func(status int, code, msg string, header ...string) func(http.ResponseWriter, *http.Request, ossCall) {
		return func(w http.ResponseWriter, _ *http.Request, c ossCall) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			writeOSSError(w, status, code, msg, c.RequestID)
		}
	}
	cases := []struct {
		name       string
		secret     string // the client's secret; the fake knows testSK
		timeout    string
		reply      func(http.ResponseWriter, *http.Request, ossCall)
		want       actionapi.Outcome
		wantDetail []string
		wantWait   time.Duration
	}{
		{
			name:       "access denied is permanent",
			reply:      xmlError(http.StatusForbidden, "AccessDenied", "You have no right to access this object because of bucket acl."),
			want:       actionapi.Permanent,
			wantDetail: []string{"AccessDenied: You have no right to access this object because of bucket acl.", "(RequestId 65F2A1B0C3D4E5F6"},
		},
		{
			name:       "missing source object is permanent",
			reply:      xmlError(http.StatusNotFound, "NoSuchKey", "The specified key does not exist."),
			want:       actionapi.Permanent,
			wantDetail: []string{"NoSuchKey: The specified key does not exist."},
		},
		{
			name:       "service unavailable is retryable, tried once",
			reply:      xmlError(http.StatusServiceUnavailable, "ServiceUnavailable", "Please reduce your request rate."),
			want:       actionapi.Retryable,
			wantDetail: []string{"ServiceUnavailable: Please reduce your request rate."},
		},
		{
			name:       "throttled with Retry-After",
			reply:      xmlError(http.StatusTooManyRequests, "QpsLimitExceeded", "Qps limit exceeded.", "Retry-After", "7"),
			want:       actionapi.Retryable,
			wantDetail: []string{"QpsLimitExceeded"},
			wantWait:   7 * time.Second,
		},
		{
			name:       "wrong secret fails the fake's signature check",
			secret:     "wrong-secret-0001",
			want:       actionapi.Permanent,
			wantDetail: []string{"SignatureDoesNotMatch: The request signature we calculated does not match"},
		},
		{
			name:    "a hung service times out as retryable",
			timeout: "200ms",
			// Answers only once the client has given up.
			reply: func(w http.ResponseWriter, r *http.Request, c ossCall) {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			},
			want:       actionapi.Retryable,
			wantDetail: []string{"Post http://127.0.0.1:", "/rec-live/" + seedURI + ": timed out"},
		},
		{
			name: "an unreadable success reply is permanent: the task may be queued",
			reply: func(w http.ResponseWriter, _ *http.Request, c ossCall) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, "<html>gateway</html>")
			},
			want:       actionapi.Permanent,
			wantDetail: []string{"UnmarshalOutputFail"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeOSS(t, testAK, testSK, testRegion)
			f.reply = tc.reply
			sk, timeout := testSK, "2s"
			if tc.secret != "" {
				sk = tc.secret
			}
			if tc.timeout != "" {
				timeout = tc.timeout
			}
			src := strings.Replace(instanceYAML(f.URL, testAK, sk, ""), "timeout: 2s", "timeout: "+timeout, 1)
			st := actiontest.Step(t, mustOpen(t, src), `{process: "video/convert,f_mp4", save_as: {object: out.mp4}}`)
			plan, err := st.Plan(actionapi.Input{Event: actiontest.SeedEvent(t)})
			if err != nil {
				t.Fatal(err)
			}
			res := st.Do(context.Background(), plan)
			if res.Outcome != tc.want {
				t.Errorf("Outcome = %v, want %v (detail %q)", res.Outcome, tc.want, res.Detail)
			}
			if res.Err == nil {
				t.Error("Err is nil on a failure")
			}
			for _, d := range tc.wantDetail {
				if !strings.Contains(res.Detail, d) {
					t.Errorf("Detail = %q, want it to contain %q", res.Detail, d)
				}
			}
			if res.RetryAfter != tc.wantWait {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tc.wantWait)
			}
			if n := len(f.Calls()); n != 1 {
				t.Errorf("fake saw %d requests, want exactly 1 (no SDK retries)", n)
			}
			assertNoSecret(t, plan, res)
		})
	}
}

func TestEnvironmentCredentials(t *testing.T) {
	t.Setenv(envKeyID, testAK)
	t.Setenv(envKeySecret, testSK)
	f := newFakeOSS(t, testAK, testSK, testRegion)
	s := actiontest.Settings(t, "transcode", "oss", fmt.Sprintf("{region: %s, endpoint: %q, bucket: rec-live}", testRegion, f.URL))
	inst, err := open(s)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	st := actiontest.Step(t, inst, `{process: "video/convert,f_mp4", save_as: {object: out.mp4}}`)
	plan, err := st.Plan(actionapi.Input{Event: actiontest.SeedEvent(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res := st.Do(context.Background(), plan); res.Outcome != actionapi.Delivered {
		t.Fatalf("Do = %v %q, want delivered with the environment's keys", res.Outcome, res.Detail)
	}
	if got := s.Secrets.Redact("key " + testSK); got != "key "+secret.Redacted {
		t.Errorf("the environment's secret is not redacted: %q", got)
	}
}

func TestOpenErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"region missing", `{bucket: b1b, access_key_id: a, access_key_secret: b}`, "transcode: region is required"},
		{"region with oss- prefix", `{region: oss-cn-shanghai, bucket: b1b, access_key_id: a, access_key_secret: b}`, "without the oss- prefix, e.g. cn-shanghai"},
		{"bucket missing", `{region: cn-shanghai, access_key_id: a, access_key_secret: b}`, "transcode: bucket is required"},
		{"bad bucket template", `{region: cn-shanghai, bucket: "{{ .bukket }}", access_key_id: a, access_key_secret: b}`, `rules.yaml:1:31: template: unknown field "bukket"`},
		{"key id without secret", `{region: cn-shanghai, bucket: b1b, access_key_id: a}`, "access_key_id and access_key_secret go together"},
		{"secret without key id", `{region: cn-shanghai, bucket: b1b, access_key_secret: b}`, "access_key_id and access_key_secret go together"},
		{"no credentials anywhere", `{region: cn-shanghai, bucket: b1b}`, "no credentials: set access_key_id and access_key_secret, or the environment variables OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET"},
		{"endpoint with a path", `{region: cn-shanghai, bucket: b1b, endpoint: "http://127.0.0.1:9/oss", access_key_id: a, access_key_secret: b}`, "want scheme://host[:port]"},
		{"retry is the engine's", "region: cn-shanghai\nbucket: b1b\naccess_key_id: a\naccess_key_secret: b\nretry: {attempts: 3}", `rules.yaml:5:1: unknown key "retry"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envKeyID, "")
			t.Setenv(envKeySecret, "")
			inst, err := open(actiontest.Settings(t, "transcode", "oss", tc.yaml))
			if err == nil {
				inst.Close()
				t.Fatalf("open succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestStepErrors(t *testing.T) {
	t.Setenv(envKeyID, "")
	t.Setenv(envKeySecret, "")
	inst := mustOpen(t, instanceYAML("http://127.0.0.1:9", testAK, testSK, ""))
	cases := []struct {
		name, with, want string
	}{
		{"unknown mode", `{mode: later, process: x}`, `mode "later": want async or sync`},
		{"process missing", `{save_as: {object: a.mp4}}`, "process is required"},
		{"notify in sync mode", `{mode: sync, process: image/resize, save_as: {object: a.jpg}, notify_topic: t}`, "notify_topic works with mode async only"},
		{"sync without save_as", `{mode: sync, process: "image/resize,w_320"}`, "mode sync needs save_as"},
		{"save_as bucket without object", `{process: x, save_as: {bucket: other}}`, "save_as: object is required"},
		{"unknown param", `{process: x, saveas: {object: a}}`, `unknown key "saveas"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inst.Step(actionapi.Params{File: "rules.yaml", Node: actiontest.Node(t, tc.with)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Step error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	body, err := os.ReadFile("../../testdata/events/record_paused.json")
	if err != nil {
		t.Fatal(err)
	}
	status, err := event.DecodeRecord(body)
	if err != nil {
		t.Fatal(err)
	}
	inst := mustOpen(t, instanceYAML("http://127.0.0.1:9", testAK, testSK, ""))
	cases := []struct {
		name, with string
		ev         *event.Event
		want       string
	}{
		{"status event has no uri", `{process: "video/convert,f_mp4", save_as: {object: a.mp4}}`, status, "object: rendered empty"},
		{"save_as bucket renders invalid", `{process: "video/convert,f_mp4", save_as: {bucket: "{{ .stream }}_Bucket", object: a.mp4}}`, actiontest.SeedEvent(t), `save_as.bucket: "hello_Bucket" is not a bucket name`},
		{"object with a leading slash", `{object: "/{{ .uri }}", process: "video/convert,f_mp4"}`, actiontest.SeedEvent(t), "must not start with /"},
		{"process renders empty", `{process: '{{ .app | trimPrefix "live" }}'}`, actiontest.SeedEvent(t), "process: rendered empty"},
		{"process uses a missing field", `{process: "video/convert,{{ .push_args.callback_profile }}"}`, actiontest.SeedEvent(t), `process: rendered "video/convert,<no value>": a field it uses is missing`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := actiontest.Step(t, inst, tc.with).Plan(actionapi.Input{Event: tc.ev})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A step's override must not leak into the instance's defaults or into the
// instance's other steps.
func TestStepOverridesStayPerStep(t *testing.T) {
	inst := mustOpen(t, instanceYAML("http://127.0.0.1:9", testAK, testSK,
		"process: video/convert,f_mp4\nsave_as: {object: '{{ .uri }}.mp4'}"))
	override := actiontest.Step(t, inst, `{process: "video/convert,f_mkv", save_as: {object: "{{ .uri }}.mkv"}}`)
	plain := actiontest.Step(t, inst, "")
	ev := actiontest.SeedEvent(t)
	for _, c := range []struct {
		name string
		st   actionapi.Step
		want string
	}{
		{"override", override, "video/convert,f_mkv|sys/saveas,o_" + b64url(seedURI+".mkv")},
		{"defaults", plain, "video/convert,f_mp4|sys/saveas,o_" + b64url(seedURI+".mp4")},
	} {
		plan, err := c.st.Plan(actionapi.Input{Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		if plan.Info["process"] != c.want {
			t.Errorf("%s: process = %v, want %s", c.name, plan.Info["process"], c.want)
		}
	}
}

// One instance serves concurrent deliveries.
func TestConcurrentDeliveries(t *testing.T) {
	f := newFakeOSS(t, testAK, testSK, testRegion)
	st := actiontest.Step(t, mustOpen(t, instanceYAML(f.URL, testAK, testSK, "")), `{process: "video/convert,f_mp4", save_as: {object: out.mp4}}`)
	plan, err := st.Plan(actionapi.Input{Event: actiontest.SeedEvent(t)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	results := make([]actionapi.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = st.Do(context.Background(), plan)
		}()
	}
	wg.Wait()
	tasks := map[string]bool{}
	for _, r := range results {
		if r.Outcome != actionapi.Delivered {
			t.Errorf("Do = %v %q", r.Outcome, r.Detail)
		}
		tasks[r.IDs["TaskId"]] = true
	}
	if len(f.Calls()) != n || len(tasks) != n {
		t.Errorf("fake saw %d requests and %d distinct tasks, want %d of each", len(f.Calls()), len(tasks), n)
	}
}

func TestDefaultEndpoint(t *testing.T) {
	inst := mustOpen(t, "{region: cn-hangzhou, bucket: rec-live, access_key_id: a, access_key_secret: b}")
	plan, err := actiontest.Step(t, inst, `{process: "video/convert,f_mp4", save_as: {object: out.mp4}}`).Plan(actionapi.Input{Event: actiontest.SeedEvent(t)})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Info["endpoint"] != "https://oss-cn-hangzhou.aliyuncs.com" || plan.Target != "oss://rec-live/"+seedURI {
		t.Errorf("plan goes to %v %s, want https://oss-cn-hangzhou.aliyuncs.com oss://rec-live/%s", plan.Info["endpoint"], plan.Target, seedURI)
	}
}

// The completion examples decode as generic events, and the README's alert
// template finds its fields in them.
func TestCompletionExamples(t *testing.T) {
	alert := tmpl.MustParse(`OSS task {{ .payload.TaskId }} {{ .payload.Status }}{{ with .payload.Code }}: {{ . }} {{ $.payload.Message }}{{ end }}`)
	cases := []struct{ file, want string }{
		{"oss_job_succeeded.json", "OSS task MediaConvert-e4a737df-69e9-4fca-8d9b-17c40ea3a3f1 Succeeded"},
		{"oss_job_failed.json", `OSS task MediaConvert-0b9c1f4e-2d7a-4c35-a8e6-5f1d3b7c9e02 Failed: InvalidParameter.ResourceContentBad The resource operated "InputFile" is bad`},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile("../../testdata/events/generic/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := event.DecodeGeneric("oss_jobs", body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := alert.Render(event.TemplateData(ev, nil))
			if err != nil || got != tc.want {
				t.Errorf("alert = %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}
