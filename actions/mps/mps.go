// Package mps is the `mps` action: it submits an ApsaraVideo Media
// Processing (MTS) transcoding job with SubmitJobs, typically turning a
// fresh recording into a rendition through a transcoding template.
package mps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/mts"

	"github.com/livehook/livehook/actions/internal/aliyun"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/internal/alicloud"
	"github.com/livehook/livehook/internal/textcut"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "mps",
		Doc:  "submit an ApsaraVideo Media Processing transcoding job (SubmitJobs)",
		Open: open,
		// A transcoding job may wait out an outage of hours; an alert may not.
		Delivery: actionapi.Jobs,
	})
}

// maxUserData is the longest UserData MPS keeps.
const maxUserData = 1024

// Config is an mps instance's settings.
type Config struct {
	// Region is the MPS region id, e.g. cn-shanghai; buckets must be there
	// too. Required.
	Region string `yaml:"region"`
	// Endpoint overrides https://mts.<region>.aliyuncs.com.
	Endpoint string `yaml:"endpoint"`
	// AccessKeyID and AccessKeySecret sign requests; both or neither. When
	// neither is set, ALIBABA_CLOUD_ACCESS_KEY_ID and
	// ALIBABA_CLOUD_ACCESS_KEY_SECRET are used.
	AccessKeyID     secret.Secret `yaml:"access_key_id"`
	AccessKeySecret secret.Secret `yaml:"access_key_secret"`
	// PipelineID is the MPS queue the job joins. Required.
	PipelineID string `yaml:"pipeline_id"`
	// TemplateID is the transcoding template. Required.
	TemplateID string `yaml:"template_id"`
	// Timeout bounds one request; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	Params  `yaml:",inline"`
}

// Params can be set on the instance and overridden per step. Templates are
// values so a step's override never writes into the instance's defaults.
type Params struct {
	Input  File `yaml:"input"`  // bucket required; object default: the recording's uri
	Output File `yaml:"output"` // object required; bucket default: the input bucket
	// UserData is passed through to the job and its completion message.
	UserData tmpl.Template `yaml:"user_data"`
}

// File is an OSS object as MPS names it. Keys are written plain; the action
// URL-encodes them as MPS requires.
type File struct {
	Bucket   tmpl.Template `yaml:"bucket"`
	Location tmpl.Template `yaml:"location"` // default: oss-<region>
	Object   tmpl.Template `yaml:"object"`
}

var defaultObject = *tmpl.MustParse(`{{ .uri }}`)

var locationRE = regexp.MustCompile(`^oss-[a-z0-9]+(-[a-z0-9]+)*$`)

type instance struct {
	region     string
	scheme     string // HTTPS or HTTP, as the SDK spells it
	host       string // host[:port] requests go to
	credential auth.Credential
	transport  http.RoundTripper // the daemon's shared pool
	timeout    time.Duration
	pipelineID string
	templateID string
	defaults   Params
}

var (
	_ actionapi.Instance = (*instance)(nil)
	_ actionapi.Step     = (*step)(nil)
)

func open(s actionapi.Settings) (actionapi.Instance, error) {
	var c Config
	if err := s.Decode(&c); err != nil {
		return nil, err
	}
	if err := alicloud.CheckRegion(c.Region); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	switch {
	case c.PipelineID == "":
		return nil, fmt.Errorf("%s: pipeline_id is required", s.Name)
	case c.TemplateID == "":
		return nil, fmt.Errorf("%s: template_id is required", s.Name)
	case c.Timeout < 0:
		return nil, fmt.Errorf("%s: timeout must not be negative", s.Name)
	}
	scheme, host, err := resolveEndpoint(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	cred, err := credentialFor(c, s.Secrets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	client := s.Deps.HTTP.Client(actionapi.HTTPOptions{Timeout: c.Timeout}).HTTPClient
	return &instance{
		region:     c.Region,
		scheme:     scheme,
		host:       host,
		credential: cred,
		transport:  client.Transport,
		timeout:    client.Timeout,
		pipelineID: c.PipelineID,
		templateID: c.TemplateID,
		defaults:   c.Params,
	}, nil
}

func resolveEndpoint(c Config) (scheme, host string, err error) {
	if c.Endpoint == "" {
		return "HTTPS", "mts." + c.Region + ".aliyuncs.com", nil
	}
	u, err := alicloud.ParseEndpoint(c.Endpoint, "https://mts.cn-shanghai.aliyuncs.com")
	if err != nil {
		return "", "", err
	}
	return strings.ToUpper(u.Scheme), u.Host, nil
}

// credentialFor picks the AccessKey. It never hands the SDK a nil
// credential: that would start its default chain, which probes the ECS
// metadata service over the network.
func credentialFor(c Config, r *secret.Redactor) (auth.Credential, error) {
	k, err := alicloud.AccessKeyFor(c.AccessKeyID, c.AccessKeySecret, alicloud.EnvAccessKeyID, alicloud.EnvAccessKeySecret, r)
	if err != nil {
		return nil, err
	}
	return &credentials.AccessKeyCredential{AccessKeyId: k.ID, AccessKeySecret: k.Secret}, nil
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	p := i.defaults
	if err := with.Decode(&p); err != nil {
		return nil, err
	}
	// Defaults go in after the merge: a step's input: replaces the
	// instance's whole mapping.
	if p.Input.Object.IsZero() {
		p.Input.Object = defaultObject
	}
	switch {
	case p.Input.Bucket.IsZero():
		return nil, errors.New("input: bucket is required")
	case p.Output.Object.IsZero():
		return nil, errors.New("output: object is required")
	}
	return &step{i: i, params: p}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
}

// ossFile is an object in the JSON shape SubmitJobs reads.
type ossFile struct {
	Bucket   string `json:"Bucket"`
	Location string `json:"Location"`
	Object   string `json:"Object"`
}

type output struct {
	OutputObject string `json:"OutputObject"`
	TemplateID   string `json:"TemplateId"`
	UserData     string `json:"UserData,omitempty"`
}

// submission is what Plan rendered and Do sends.
type submission struct {
	input, outputs, outputBucket, outputLocation string
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	data := in.Data()
	src, err := s.renderFile("input", &s.params.Input, "", data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	dst, err := s.renderFile("output", &s.params.Output, src.Bucket, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	userData, err := aliyun.Render("user_data", &s.params.UserData, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	if len(userData) > maxUserData {
		return actionapi.Plan{}, fmt.Errorf("user_data: %d bytes, MPS keeps at most %d", len(userData), maxUserData)
	}
	input := src
	input.Object = escapeKey(src.Object)
	// Structs of strings: Marshal cannot fail.
	inputJSON, _ := json.Marshal(input)
	outputsJSON, _ := json.Marshal([]output{{OutputObject: escapeKey(dst.Object), TemplateID: s.i.templateID, UserData: userData}})
	sub := submission{input: string(inputJSON), outputs: string(outputsJSON), outputBucket: dst.Bucket, outputLocation: dst.Location}
	return actionapi.Plan{
		Method: http.MethodPost,
		Target: strings.ToLower(s.i.scheme) + "://" + s.i.host + "/?Action=SubmitJobs",
		Body: map[string]string{
			"Input":          sub.input,
			"OutputBucket":   sub.outputBucket,
			"OutputLocation": sub.outputLocation,
			"Outputs":        sub.outputs,
			"PipelineId":     s.i.pipelineID,
		},
		Info: map[string]any{
			"input":       "oss://" + src.Bucket + "/" + src.Object,
			"output":      "oss://" + dst.Bucket + "/" + dst.Object,
			"pipeline_id": s.i.pipelineID,
			"template_id": s.i.templateID,
		},
		Payload: sub,
	}, nil
}

// renderFile renders one side of the job; an empty bucket falls back to
// defaultBucket and an empty location to the instance's region.
func (s *step) renderFile(side string, f *File, defaultBucket string, data map[string]any) (ossFile, error) {
	var out ossFile
	var err error
	if out.Bucket, err = aliyun.Render(side+".bucket", &f.Bucket, data); err != nil {
		return out, err
	}
	if out.Bucket == "" {
		out.Bucket = defaultBucket
	}
	if err := aliyun.CheckBucket(side+".bucket", out.Bucket); err != nil {
		return out, err
	}
	if out.Location, err = aliyun.Render(side+".location", &f.Location, data); err != nil {
		return out, err
	}
	if out.Location == "" {
		out.Location = "oss-" + s.i.region
	}
	if !locationRE.MatchString(out.Location) {
		return out, fmt.Errorf("%s.location: %q: want an OSS location such as oss-%s", side, out.Location, s.i.region)
	}
	if out.Object, err = aliyun.Render(side+".object", &f.Object, data); err != nil {
		return out, err
	}
	switch {
	case out.Object == "":
		return out, fmt.Errorf("%s.object: rendered empty", side)
	case strings.HasPrefix(out.Object, "/"):
		return out, fmt.Errorf("%s.object: key %q must not start with /", side, out.Object)
	case !utf8.ValidString(out.Object):
		return out, fmt.Errorf("%s.object: key is not valid UTF-8", side)
	}
	return out, nil
}

// escapeKey URL-encodes an object key the way MPS decodes it (RFC 3986,
// UTF-8): every byte but unreserved characters is escaped, so a space is
// %20 and a plus %2B, while / still separates the path.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	}
	return strings.Join(segs, "/")
}

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	sub, ok := p.Payload.(submission)
	if !ok {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("mps: plan carries %T, not an mps submission", p.Payload))
	}
	req := mts.CreateSubmitJobsRequest()
	req.Scheme, req.Domain = s.i.scheme, s.i.host
	req.Input, req.Outputs = sub.input, sub.outputs
	req.OutputBucket, req.OutputLocation = sub.outputBucket, sub.outputLocation
	req.PipelineId = s.i.pipelineID
	resp, err := s.i.submit(ctx, req)
	if err != nil {
		return failure(err)
	}
	ids := map[string]string{}
	if resp.RequestId != "" {
		ids["RequestId"] = resp.RequestId
	}
	jobs := resp.JobResultList.JobResult
	if len(jobs) == 0 {
		detail := fmt.Sprintf("the reply lists no job (RequestId %s)", resp.RequestId)
		return actionapi.Result{Outcome: actionapi.Permanent, Detail: detail, IDs: ids, Err: errors.New("mps: " + detail)}
	}
	// One output was sent, so one job comes back; read them all anyway.
	var jobIDs []string
	for _, j := range jobs {
		if j.Job.JobId != "" {
			jobIDs = append(jobIDs, j.Job.JobId)
		}
	}
	if len(jobIDs) > 0 {
		ids["JobId"] = strings.Join(jobIDs, ",")
	}
	for _, j := range jobs {
		if !j.Success {
			// HTTP 200 still carries per-output failures.
			detail := fmt.Sprintf("job not submitted: %s: %s (RequestId %s)", j.Code, j.Message, resp.RequestId)
			return actionapi.Result{Outcome: outcomeFor(0, j.Code), Detail: detail, IDs: ids, Err: errors.New("mps: " + detail)}
		}
	}
	state := strings.ToLower(jobs[0].Job.State)
	if state == "" {
		state = "submitted"
	}
	return actionapi.Result{Outcome: actionapi.Delivered, Detail: fmt.Sprintf("job %s %s", ids["JobId"], state), IDs: ids}
}

// submit calls SubmitJobs on a client made for this call. The SDK client
// rewrites its http.Client's timeout on every call, so sharing one between
// concurrent deliveries would race; a fresh one is a few allocations.
func (i *instance) submit(ctx context.Context, req *mts.SubmitJobsRequest) (resp *mts.SubmitJobsResponse, err error) {
	err = alicloud.Guard(func() error {
		cfg := sdk.NewConfig()
		cfg.AutoRetry = false // not idempotent: the engine retries, with dedupe
		cfg.Timeout = i.timeout
		cfg.Transport = alicloud.WithContext(ctx, i.transport) // shutdown and the engine's deadlines stop it
		client, err := mts.NewClientWithOptions(i.region, cfg, i.credential)
		if err != nil {
			return err
		}
		resp, err = client.SubmitJobs(req)
		return err
	})
	return resp, err
}

// outcomeFor classifies an MPS error by HTTP status (0 when the error came
// inside a 200) and code.
func outcomeFor(status int, code string) actionapi.Outcome {
	if (status != 0 && actionapi.RetryableStatus(status)) ||
		strings.HasPrefix(code, "Throttling") || strings.HasPrefix(code, "InternalError") ||
		code == "ServiceUnavailable" || code == "ServiceUnavailableTemporary" {
		return actionapi.Retryable
	}
	return actionapi.Permanent
}

// failure classifies an error from the SDK: MPS's own error replies by
// status and code, the rest as aliyun.Failed does.
func failure(err error) actionapi.Result {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		detail := fmt.Sprintf("%s: %s (RequestId %s)", se.ErrorCode(), se.Message(), se.RequestId())
		if se.ErrorCode() == "" { // not MPS's JSON: a proxy or gateway spoke
			detail = fmt.Sprintf("HTTP %d: %s", se.HttpStatus(), textcut.Truncate(strings.TrimSpace(se.Message()), 512))
		}
		r := actionapi.Result{Outcome: outcomeFor(se.HttpStatus(), se.ErrorCode()), Detail: detail, Err: &aliyun.OpError{Service: "mps", Detail: detail, Err: err}}
		if se.RequestId() != "" {
			r.IDs = map[string]string{"RequestId": se.RequestId()}
		}
		if r.Outcome == actionapi.Retryable {
			r.RetryAfter, _ = actionapi.RetryAfter(&http.Response{Header: se.RespHeaders})
		}
		return r
	}
	return aliyun.Failed("mps", err)
}
