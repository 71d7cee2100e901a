package mps

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/livehook/livehook/actions/actiontest"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/internal/alicloud"
)

const (
	testAK       = "LTAI5tMpsTestKeyId01"
	testSK       = "s3cr3t-MPS-key-never-shown-0001"
	testPipeline = "88c6ca184c0e47098a5b665e2a12****"
	testTemplate = "S00000001-200010"
	seedURI      = actiontest.SeedURI
	mp4URI       = "live/hello/0_2017-03-08-23:09:46_2017-03-08-23:10:40.mp4"
)

func instanceYAML(endpoint, sk, timeout string) string {
	return fmt.Sprintf(`
region: cn-shanghai
endpoint: %s
access_key_id: %s
access_key_secret: %s
pipeline_id: %q
template_id: %s
timeout: %s
input: { bucket: rec-live }
output: { object: '{{ .uri | trimSuffix ".flv" }}.mp4' }
`, endpoint, testAK, sk, testPipeline, testTemplate, timeout)
}

func mustOpen(t *testing.T, src string) actionapi.Instance {
	t.Helper()
	inst, err := open(actiontest.Settings(t, "mps-mp4", "mps", src))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

func TestDeliver(t *testing.T) {
	cases := []struct {
		name        string
		with        string
		wantCall    mpsCall
		wantOutputs string // the Outputs parameter as planned
		wantInfo    map[string]any
	}{
		{
			name: "seed flv to mp4 beside it",
			with: `{user_data: '{{ .domain }}/{{ .stream }}'}`,
			wantCall: mpsCall{
				Action: "SubmitJobs", RegionID: "cn-shanghai", PipelineID: testPipeline,
				InputBucket: "rec-live", InputLocation: "oss-cn-shanghai", InputObject: seedURI,
				RawInputObject: "live/hello/0_2017-03-08-23%3A09%3A46_2017-03-08-23%3A10%3A40.flv",
				OutputBucket:   "rec-live", OutputLocation: "oss-cn-shanghai", OutputObject: mp4URI,
				TemplateID: testTemplate, UserData: "live.aliyunlive.com/hello",
			},
			wantOutputs: `[{"OutputObject":"live/hello/0_2017-03-08-23%3A09%3A46_2017-03-08-23%3A10%3A40.mp4","TemplateId":"S00000001-200010","UserData":"live.aliyunlive.com/hello"}]`,
			wantInfo: map[string]any{
				"input":  "oss://rec-live/" + seedURI,
				"output": "oss://rec-live/" + mp4URI,
			},
		},
		{
			name: "spaces and plus signs into another bucket",
			with: `{output: {bucket: vod-out, location: oss-cn-shanghai, object: 'renditions/{{ .stream }} HD +.mp4'}}`,
			wantCall: mpsCall{
				Action: "SubmitJobs", RegionID: "cn-shanghai", PipelineID: testPipeline,
				InputBucket: "rec-live", InputLocation: "oss-cn-shanghai", InputObject: seedURI,
				RawInputObject: "live/hello/0_2017-03-08-23%3A09%3A46_2017-03-08-23%3A10%3A40.flv",
				OutputBucket:   "vod-out", OutputLocation: "oss-cn-shanghai", OutputObject: "renditions/hello HD +.mp4",
				TemplateID: testTemplate,
			},
			wantOutputs: `[{"OutputObject":"renditions/hello%20HD%20%2B.mp4","TemplateId":"S00000001-200010"}]`,
			wantInfo: map[string]any{
				"input":  "oss://rec-live/" + seedURI,
				"output": "oss://vod-out/renditions/hello HD +.mp4",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMPS(t, testAK, testSK)
			st := actiontest.Step(t, mustOpen(t, instanceYAML(f.URL, testSK, "5s")), tc.with)
			plan, err := st.Plan(actionapi.Input{Event: actiontest.SeedEvent(t), Rule: "mp4"})
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if plan.Method != http.MethodPost || plan.Target != f.URL+"/?Action=SubmitJobs" {
				t.Errorf("plan goes %s %s, want POST %s/?Action=SubmitJobs", plan.Method, plan.Target, f.URL)
			}
			body := plan.Body.(map[string]string)
			if body["Outputs"] != tc.wantOutputs {
				t.Errorf("Outputs = %s\nwant      %s", body["Outputs"], tc.wantOutputs)
			}
			if body["PipelineId"] != testPipeline {
				t.Errorf("PipelineId = %q", body["PipelineId"])
			}
			for k, want := range tc.wantInfo {
				if plan.Info[k] != want {
					t.Errorf("Info[%s] = %v, want %v", k, plan.Info[k], want)
				}
			}

			res := st.Do(context.Background(), plan)
			if res.Outcome != actionapi.Delivered {
				t.Fatalf("Do = %v %q (err %v), want delivered", res.Outcome, res.Detail, res.Err)
			}
			calls := f.Calls()
			if len(calls) != 1 {
				t.Fatalf("fake saw %d requests, want 1", len(calls))
			}
			got, want := calls[0], tc.wantCall
			want.RequestID, want.JobID = got.RequestID, got.JobID
			if got != want {
				t.Errorf("fake decoded\n %+v\nwant\n %+v", got, want)
			}
			if res.IDs["JobId"] != got.JobID || res.IDs["RequestId"] != got.RequestID || len(res.IDs) != 2 {
				t.Errorf("IDs = %v, want JobId %s and RequestId %s", res.IDs, got.JobID, got.RequestID)
			}
			if want := "job " + got.JobID + " submitted"; res.Detail != want {
				t.Errorf("Detail = %q, want %q", res.Detail, want)
			}
			assertNoSecret(t, plan, res)
		})
	}
}

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
		if strings.Contains(s, testSK) || strings.Contains(s, "wrong-secret") || (where != "ids" && strings.Contains(s, "Signature=")) {
			t.Errorf("secret leaked into %s: %s", where, s)
		}
	}
}

func TestFailures(t *testing.T) {
	failedJob := func(code, msg string) func(http.ResponseWriter, *http.Request, mpsCall) {
		return func(w http.ResponseWriter, _ *http.Request, c mpsCall) {
			writeJSON(w, http.StatusOK, jobReply(c, false, code, msg))
		}
	}
	rpcError := func(status int, code, msg string) func(http.ResponseWriter, *http.Request, mpsCall) {
		return func(w http.ResponseWriter, _ *http.Request, c mpsCall) {
			writeRPCError(w, status, code, msg, c.RequestID)
		}
	}
	raw := func(status int, contentType, body string) func(http.ResponseWriter, *http.Request, mpsCall) {
		return func(w http.ResponseWriter, _ *http.Request, c mpsCall) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}
	}
	cases := []struct {
		name       string
		secret     string
		timeout    string
		reply      func(http.ResponseWriter, *http.Request, mpsCall)
		want       actionapi.Outcome
		wantDetail []string
		wantIDs    []string
	}{
		{
			name:       "failed job inside a 200 is permanent",
			reply:      failedJob("InvalidParameter", `The parameter "TemplateId" is invalid.`),
			want:       actionapi.Permanent,
			wantDetail: []string{`job not submitted: InvalidParameter: The parameter "TemplateId" is invalid. (RequestId 25818875-`},
			wantIDs:    []string{"JobId", "RequestId"},
		},
		{
			name:       "internal error inside a 200 is retryable",
			reply:      failedJob("InternalError", "The request processing has failed due to some unknown error."),
			want:       actionapi.Retryable,
			wantDetail: []string{"InternalError: The request processing has failed"},
			wantIDs:    []string{"JobId", "RequestId"},
		},
		{
			name:       "pipeline not found is permanent",
			reply:      rpcError(http.StatusNotFound, "InvalidParameter.ResourceNotFound", `The resource operated "PipelineId" cannot be found.`),
			want:       actionapi.Permanent,
			wantDetail: []string{`InvalidParameter.ResourceNotFound: The resource operated "PipelineId" cannot be found. (RequestId 25818875-`},
			wantIDs:    []string{"RequestId"},
		},
		{
			name:       "throttling in a 400 is retryable",
			reply:      rpcError(http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control."),
			want:       actionapi.Retryable,
			wantDetail: []string{"Throttling.User: Request was denied due to user flow control."},
			wantIDs:    []string{"RequestId"},
		},
		{
			name:       "service unavailable is retryable, tried once",
			reply:      rpcError(http.StatusServiceUnavailable, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
			want:       actionapi.Retryable,
			wantDetail: []string{"ServiceUnavailable: The request has failed due to a temporary failure"},
			wantIDs:    []string{"RequestId"},
		},
		{
			name:       "wrong secret fails the fake's signature check",
			secret:     "wrong-secret-0001",
			want:       actionapi.Permanent,
			wantDetail: []string{"SignatureDoesNotMatch: Specified signature is not matched with our calculation."},
			wantIDs:    []string{"RequestId"},
		},
		{
			name:       "a gateway's HTML 502 is retryable",
			reply:      raw(http.StatusBadGateway, "text/html", "<html><body>502 Bad Gateway</body></html>"),
			want:       actionapi.Retryable,
			wantDetail: []string{"HTTP 502: <html><body>502 Bad Gateway</body></html>"},
		},
		{
			name:       "an error reply the SDK chokes on is permanent, not a crash",
			reply:      raw(http.StatusBadRequest, "application/json", `{"RequestId":12345,"Code":"InvalidParameter","Message":"x"}`),
			want:       actionapi.Permanent,
			wantDetail: []string{"the SDK could not read the reply"},
		},
		{
			name:       "an unreadable success reply is permanent: the job may exist",
			reply:      raw(http.StatusOK, "application/json", `{"RequestId":"r1","JobResultList":`),
			want:       actionapi.Permanent,
			wantDetail: []string{"JsonUnmarshalError"},
		},
		{
			name:       "a 200 listing no job is permanent",
			reply:      raw(http.StatusOK, "application/json", `{"RequestId":"r1","JobResultList":{"JobResult":[]}}`),
			want:       actionapi.Permanent,
			wantDetail: []string{"the reply lists no job (RequestId r1)"},
			wantIDs:    []string{"RequestId"},
		},
		{
			name:    "a hung service times out as retryable",
			timeout: "200ms",
			reply: func(w http.ResponseWriter, r *http.Request, c mpsCall) {
				<-r.Context().Done() // the client gives up first
			},
			want:       actionapi.Retryable,
			wantDetail: []string{"Post http://127.0.0.1:", "/: timed out"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMPS(t, testAK, testSK)
			f.reply = tc.reply
			sk, timeout := testSK, "5s"
			if tc.secret != "" {
				sk = tc.secret
			}
			if tc.timeout != "" {
				timeout = tc.timeout
			}
			st := actiontest.Step(t, mustOpen(t, instanceYAML(f.URL, sk, timeout)), "")
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
			for _, k := range tc.wantIDs {
				if res.IDs[k] == "" {
					t.Errorf("IDs = %v, want %s", res.IDs, k)
				}
			}
			if len(res.IDs) != len(tc.wantIDs) {
				t.Errorf("IDs = %v, want only %v", res.IDs, tc.wantIDs)
			}
			if n := len(f.Calls()); n != 1 {
				t.Errorf("fake saw %d requests, want exactly 1 (no SDK retries)", n)
			}
			assertNoSecret(t, plan, res)
		})
	}
}

// The SDK takes no context; the delivery's context must still stop it.
func TestCancelStopsRequest(t *testing.T) {
	f := newFakeMPS(t, testAK, testSK)
	arrived := make(chan struct{})
	f.reply = func(w http.ResponseWriter, r *http.Request, c mpsCall) {
		close(arrived)
		<-r.Context().Done()
	}
	st := actiontest.Step(t, mustOpen(t, instanceYAML(f.URL, testSK, "10m")), "")
	plan, err := st.Plan(actionapi.Input{Event: actiontest.SeedEvent(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	res := st.Do(ctx, plan)
	if res.Outcome != actionapi.Retryable || !strings.Contains(res.Detail, "context canceled") {
		t.Errorf("Do = %v %q, want retryable after cancel", res.Outcome, res.Detail)
	}
}

func TestEnvironmentCredentials(t *testing.T) {
	t.Setenv(alicloud.EnvAccessKeyID, testAK)
	t.Setenv(alicloud.EnvAccessKeySecret, testSK)
	f := newFakeMPS(t, testAK, testSK)
	s := actiontest.Settings(t, "mps-mp4", "mps", fmt.Sprintf(`{region: cn-shanghai, endpoint: %q, pipeline_id: p1, template_id: t1,
		input: {bucket: rec-live}, output: {object: out.mp4}}`, f.URL))
	inst, err := open(s)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	st := actiontest.Step(t, inst, "")
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
	const ok = "access_key_id: a\naccess_key_secret: b\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"region missing", ok + "pipeline_id: p\ntemplate_id: t", "mps-mp4: region is required"},
		{"pipeline missing", ok + "region: cn-shanghai\ntemplate_id: t", "mps-mp4: pipeline_id is required"},
		{"template missing", ok + "region: cn-shanghai\npipeline_id: p", "mps-mp4: template_id is required"},
		{"key id without secret", "region: cn-shanghai\npipeline_id: p\ntemplate_id: t\naccess_key_id: a", "access_key_id and access_key_secret go together"},
		{"no credentials anywhere", "region: cn-shanghai\npipeline_id: p\ntemplate_id: t", "no credentials: set access_key_id and access_key_secret, or the environment variables ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"},
		{"endpoint with a path", ok + "region: cn-shanghai\npipeline_id: p\ntemplate_id: t\nendpoint: http://127.0.0.1:9/mts", "want scheme://host[:port]"},
		{"unknown key", ok + "region: cn-shanghai\npipeline_id: p\ntemplate_id: t\npipeline: x", `rules.yaml:6:1: unknown key "pipeline"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(alicloud.EnvAccessKeyID, "")
			t.Setenv(alicloud.EnvAccessKeySecret, "")
			inst, err := open(actiontest.Settings(t, "mps-mp4", "mps", tc.yaml))
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

func TestStepAndPlanErrors(t *testing.T) {
	body, err := os.ReadFile("../../testdata/events/record_paused.json")
	if err != nil {
		t.Fatal(err)
	}
	status, err := event.DecodeRecord(body)
	if err != nil {
		t.Fatal(err)
	}
	inst := mustOpen(t, "{region: cn-shanghai, pipeline_id: p, template_id: t, access_key_id: a, access_key_secret: b}")
	cases := []struct {
		name, with string
		ev         *event.Event
		want       string
	}{
		{"input bucket missing", `{output: {object: a.mp4}}`, nil, "input: bucket is required"},
		{"output object missing", `{input: {bucket: rec-live}}`, nil, "output: object is required"},
		{"unknown param", `{input: {bucket: rec-live, key: a}}`, nil, `unknown key "key"`},
		{"status event has no uri", `{input: {bucket: rec-live}, output: {object: a.mp4}}`, status, "input.object: rendered empty"},
		{"location is not an OSS location", `{input: {bucket: rec-live, location: cn-shanghai}, output: {object: a.mp4}}`, actiontest.SeedEvent(t), `input.location: "cn-shanghai": want an OSS location such as oss-cn-shanghai`},
		{"user data too long", `{input: {bucket: rec-live}, output: {object: a.mp4}, user_data: '{{ repeat 1025 "x" }}'}`, actiontest.SeedEvent(t), "user_data: 1025 bytes, MPS keeps at most 1024"},
		{"output uses a missing field", `{input: {bucket: rec-live}, output: {object: '{{ .push_args.callback_dir }}/a.mp4'}}`, actiontest.SeedEvent(t), "output.object: rendered \"<no value>/a.mp4\": a field it uses is missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := inst.Step(actionapi.Params{File: "rules.yaml", Node: actiontest.Node(t, tc.with)})
			if tc.ev != nil {
				if err != nil {
					t.Fatalf("Step: %v", err)
				}
				_, err = st.Plan(actionapi.Input{Event: tc.ev})
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestEscapeKey(t *testing.T) {
	cases := []struct{ name, key, want string }{
		{"MPS's own example", "Alibaba Cloud/mts HD+.mp4", "Alibaba%20Cloud/mts%20HD%2B.mp4"},
		{"space before a plus", "mts HD +.mp4", "mts%20HD%20%2B.mp4"},
		{"recording times", seedURI, "live/hello/0_2017-03-08-23%3A09%3A46_2017-03-08-23%3A10%3A40.flv"},
		{"UTF-8", "录制/房间.flv", "%E5%BD%95%E5%88%B6/%E6%88%BF%E9%97%B4.flv"},
		{"percent and ampersand", "a%b&c.mp4", "a%25b%26c.mp4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := escapeKey(tc.key); got != tc.want {
				t.Errorf("escapeKey(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

// One instance serves concurrent deliveries.
func TestConcurrentDeliveries(t *testing.T) {
	f := newFakeMPS(t, testAK, testSK)
	st := actiontest.Step(t, mustOpen(t, instanceYAML(f.URL, testSK, "5s")), "")
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
	jobs := map[string]bool{}
	for _, r := range results {
		if r.Outcome != actionapi.Delivered {
			t.Errorf("Do = %v %q", r.Outcome, r.Detail)
		}
		jobs[r.IDs["JobId"]] = true
	}
	if len(f.Calls()) != n || len(jobs) != n {
		t.Errorf("fake saw %d requests and %d distinct jobs, want %d of each", len(f.Calls()), len(jobs), n)
	}
}

func TestDefaultEndpoint(t *testing.T) {
	inst := mustOpen(t, "{region: cn-hangzhou, pipeline_id: p, template_id: t, access_key_id: a, access_key_secret: b, input: {bucket: rec-live}, output: {object: out.mp4}}")
	plan, err := actiontest.Step(t, inst, "").Plan(actionapi.Input{Event: actiontest.SeedEvent(t)})
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://mts.cn-hangzhou.aliyuncs.com/?Action=SubmitJobs"; plan.Target != want {
		t.Errorf("Target = %s, want %s", plan.Target, want)
	}
	if in := plan.Body.(map[string]string)["Input"]; !strings.Contains(in, `"Location":"oss-cn-hangzhou"`) {
		t.Errorf("Input = %s, want the region's OSS location", in)
	}
}

// The completion examples decode as generic events, and the README's alert
// template finds its fields in them.
func TestCompletionExamples(t *testing.T) {
	alert := tmpl.MustParse(`MPS job {{ .payload.JobId }} {{ .payload.State }}{{ with .payload.code }}: {{ . }} {{ $.payload.msg }}{{ end }} ({{ .payload.UserData }})`)
	cases := []struct{ file, want string }{
		{"mps_job_finished.json", "MPS job 31fa3c9ca8134fb4b0b0f7878301573f Success (live.aliyunlive.com/hello)"},
		{"mps_job_failed.json", `MPS job 8e0d7c6b5a4948f3a2b1c0d9e8f7a6b5 Fail: InvalidParameter.ResourceContentBad The resource operated "InputFile" is bad (live.aliyunlive.com/hello)`},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile("../../testdata/events/generic/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := event.DecodeGeneric("mps_jobs", body)
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
