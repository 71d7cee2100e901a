// Package oss is the `oss` action: it asks Aliyun OSS to process an object
// where it lies, typically transcoding a fresh recording with
// x-oss-async-process (video/convert) or writing a thumbnail with
// x-oss-process and sys/saveas.
package oss

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	osssdk "github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/livehook/livehook/actions/internal/aliyun"
	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/internal/alicloud"
)

func init() {
	actionapi.Register(actionapi.Type{
		Name: "oss",
		Doc:  "submit an OSS processing job on an object (video/convert, image resize with sys/saveas)",
		Open: open,
		// A transcoding job may wait out an outage of hours; an alert may not.
		Delivery: actionapi.Jobs,
	})
}

// The SDK's own credential chain reads these when the settings hold no
// AccessKey.
const (
	envKeyID     = "OSS_ACCESS_KEY_ID"
	envKeySecret = "OSS_ACCESS_KEY_SECRET"
)

// Modes: which OSS operation a step calls.
const (
	modeAsync = "async" // POST ?x-oss-async-process: queued job, for video
	modeSync  = "sync"  // POST ?x-oss-process: done in the request, for images
)

// Config is an oss instance's settings.
type Config struct {
	// Region is the bucket's region id, e.g. cn-shanghai. Required.
	Region string `yaml:"region"`
	// Endpoint overrides https://oss-<region>.aliyuncs.com (an internal
	// endpoint, a private gateway, a test server).
	Endpoint string `yaml:"endpoint"`
	// PathStyle sends /bucket/key to the endpoint instead of using
	// bucket.endpoint; implied for IP and localhost endpoints.
	PathStyle bool `yaml:"path_style"`
	// Bucket is the source bucket, a template. Required.
	Bucket tmpl.Template `yaml:"bucket"`
	// AccessKeyID and AccessKeySecret sign requests; both or neither. When
	// neither is set, OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET are used.
	AccessKeyID     secret.Secret `yaml:"access_key_id"`
	AccessKeySecret secret.Secret `yaml:"access_key_secret"`
	// Timeout bounds one request; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	Params  `yaml:",inline"`
}

// Params can be set on the instance and overridden per step. Templates are
// values, not pointers, so a step's override never writes into the
// instance's defaults.
type Params struct {
	// Object is the source object key; default: the recording's uri.
	Object tmpl.Template `yaml:"object"`
	// Mode is async (default) or sync.
	Mode string `yaml:"mode"`
	// Process is the processing instruction, e.g.
	// video/convert,f_mp4,vcodec_h264,acodec_aac. Required.
	Process tmpl.Template `yaml:"process"`
	// SaveAs is where the result goes; appended as sys/saveas.
	SaveAs SaveAs `yaml:"save_as"`
	// NotifyTopic is an MNS topic told when an async job ends.
	NotifyTopic tmpl.Template `yaml:"notify_topic"`
}

// SaveAs names the output object in plain text; the action encodes it.
type SaveAs struct {
	Bucket tmpl.Template `yaml:"bucket"` // default: the source bucket
	Object tmpl.Template `yaml:"object"`
}

var defaultObject = *tmpl.MustParse(`{{ .uri }}`)

type instance struct {
	client   *osssdk.Client
	endpoint string // shown in plans
	bucket   tmpl.Template
	defaults Params
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
	if strings.HasPrefix(c.Region, "oss-") {
		return nil, fmt.Errorf("%s: region %q: write the region id without the oss- prefix, e.g. %s", s.Name, c.Region, strings.TrimPrefix(c.Region, "oss-"))
	}
	if err := alicloud.CheckRegion(c.Region); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	switch {
	case c.Bucket.IsZero():
		return nil, fmt.Errorf("%s: bucket is required", s.Name)
	case c.Timeout < 0:
		return nil, fmt.Errorf("%s: timeout must not be negative", s.Name)
	}
	endpoint, pathStyle, err := resolveEndpoint(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	creds, err := credentialsFor(c, s.Secrets)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	if c.Object.IsZero() {
		c.Object = defaultObject
	}
	cfg := osssdk.NewConfig().
		WithRegion(c.Region).
		WithEndpoint(endpoint).
		WithUsePathStyle(pathStyle).
		WithCredentialsProvider(creds).
		// One attempt: a job submission is not idempotent, so retries are
		// the engine's, which dedupes and backs off across restarts.
		WithRetryMaxAttempts(1).
		// The daemon's shared pool and the instance's timeout, without
		// the retrying wrapper for the same reason.
		WithHttpClient(s.Deps.HTTP.Client(actionapi.HTTPOptions{Timeout: c.Timeout}).HTTPClient)
	return &instance{
		client:   osssdk.NewClient(cfg),
		endpoint: endpoint,
		bucket:   c.Bucket,
		defaults: c.Params,
	}, nil
}

// resolveEndpoint returns the endpoint URL and whether to use path-style
// addressing, which IP and localhost hosts need: bucket.127.0.0.1 does not
// resolve.
func resolveEndpoint(c Config) (string, bool, error) {
	if c.Endpoint == "" {
		return "https://oss-" + c.Region + ".aliyuncs.com", c.PathStyle, nil
	}
	u, err := alicloud.ParseEndpoint(c.Endpoint, "https://oss-cn-shanghai-internal.aliyuncs.com")
	if err != nil {
		return "", false, err
	}
	host := u.Hostname()
	pathStyle := c.PathStyle || net.ParseIP(host) != nil || host == "localhost"
	return u.Scheme + "://" + u.Host, pathStyle, nil
}

// credentialsFor builds the credentials provider. The SDK dereferences a
// nil provider mid-request, so a missing credential is a load error here.
func credentialsFor(c Config, r *secret.Redactor) (credentials.CredentialsProvider, error) {
	k, err := alicloud.AccessKeyFor(c.AccessKeyID, c.AccessKeySecret, envKeyID, envKeySecret, r)
	switch {
	case err != nil:
		return nil, err
	case k.FromEnv: // the SDK reads the variables itself
		return credentials.NewEnvironmentVariableCredentialsProvider(), nil
	}
	return credentials.NewStaticCredentialsProvider(k.ID, k.Secret), nil
}

func (i *instance) Step(with actionapi.Params) (actionapi.Step, error) {
	p := i.defaults
	if err := with.Decode(&p); err != nil {
		return nil, err
	}
	if p.Mode == "" {
		p.Mode = modeAsync
	}
	switch {
	case p.Mode != modeAsync && p.Mode != modeSync:
		return nil, fmt.Errorf("mode %q: want async or sync", p.Mode)
	case p.Process.IsZero():
		return nil, errors.New("process is required, e.g. video/convert,f_mp4,vcodec_h264,acodec_aac")
	case p.SaveAs.Object.IsZero() && !p.SaveAs.Bucket.IsZero():
		return nil, errors.New("save_as: object is required when bucket is set")
	case p.Mode == modeSync && !p.NotifyTopic.IsZero():
		return nil, errors.New("notify_topic works with mode async only: a sync process is finished when the request returns")
	case p.Mode == modeSync && p.SaveAs.Object.IsZero() && !strings.Contains(p.Process.Source(), "sys/saveas"):
		return nil, errors.New("mode sync needs save_as: without it OSS sends the processed image back instead of storing it")
	}
	return &step{i: i, params: p}, nil
}

func (i *instance) Close() error { return nil }

type step struct {
	i      *instance
	params Params
}

// request is what Plan rendered and Do sends.
type request struct {
	mode, bucket, key, process string
}

func (s *step) Plan(in actionapi.Input) (actionapi.Plan, error) {
	data := in.Data()
	bucket, err := renderBucket("bucket", &s.i.bucket, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	key, err := renderKey("object", &s.params.Object, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	process, err := aliyun.Render("process", &s.params.Process, data)
	if err != nil {
		return actionapi.Plan{}, err
	}
	if process == "" {
		return actionapi.Plan{}, errors.New("process: rendered empty")
	}
	info := map[string]any{"mode": s.params.Mode, "endpoint": s.i.endpoint}
	if !s.params.SaveAs.Object.IsZero() {
		target, err := renderKey("save_as.object", &s.params.SaveAs.Object, data)
		if err != nil {
			return actionapi.Plan{}, err
		}
		saveas := "|sys/saveas"
		targetBucket := bucket
		if !s.params.SaveAs.Bucket.IsZero() {
			if targetBucket, err = renderBucket("save_as.bucket", &s.params.SaveAs.Bucket, data); err != nil {
				return actionapi.Plan{}, err
			}
			saveas += ",b_" + b64url(targetBucket)
		}
		process += saveas + ",o_" + b64url(target)
		info["save_as"] = "oss://" + targetBucket + "/" + target
	}
	if !s.params.NotifyTopic.IsZero() {
		topic, err := aliyun.Render("notify_topic", &s.params.NotifyTopic, data)
		if err != nil {
			return actionapi.Plan{}, err
		}
		if topic != "" {
			process += "/notify,topic_" + b64url(topic)
			info["notify_topic"] = topic
		}
	}
	info["process"] = process
	param := "x-oss-async-process"
	if s.params.Mode == modeSync {
		param = "x-oss-process"
	}
	return actionapi.Plan{
		Method:  http.MethodPost,
		Target:  "oss://" + bucket + "/" + key,
		Body:    param + "=" + process,
		Info:    info,
		Payload: request{mode: s.params.Mode, bucket: bucket, key: key, process: process},
	}, nil
}

// b64url is the encoding OSS wants for names inside a process string:
// URL-safe base64 without padding.
func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func renderBucket(field string, t *tmpl.Template, data map[string]any) (string, error) {
	b, err := aliyun.Render(field, t, data)
	if err != nil {
		return "", err
	}
	return b, aliyun.CheckBucket(field, b)
}

func renderKey(field string, t *tmpl.Template, data map[string]any) (string, error) {
	k, err := aliyun.Render(field, t, data)
	if err != nil {
		return "", err
	}
	switch {
	case k == "":
		return "", fmt.Errorf("%s: rendered empty", field)
	case len(k) > 1023:
		return "", fmt.Errorf("%s: key is %d bytes, OSS allows 1023", field, len(k))
	case strings.HasPrefix(k, "/") || strings.HasPrefix(k, `\`):
		return "", fmt.Errorf("%s: key %q must not start with / or \\", field, k)
	case !utf8.ValidString(k):
		return "", fmt.Errorf("%s: key is not valid UTF-8", field)
	}
	return k, nil
}

func (s *step) Do(ctx context.Context, p actionapi.Plan) actionapi.Result {
	r, ok := p.Payload.(request)
	if !ok {
		return actionapi.Failed(actionapi.Permanent, fmt.Errorf("oss: plan carries %T, not an oss request", p.Payload))
	}
	if r.mode == modeSync {
		res, err := s.i.client.ProcessObject(ctx, &osssdk.ProcessObjectRequest{Bucket: &r.bucket, Key: &r.key, Process: &r.process})
		if err != nil {
			return failure(err)
		}
		ids := nonEmpty(map[string]string{
			"RequestId": res.Headers.Get("X-Oss-Request-Id"),
			"bucket":    res.Bucket,
			"object":    res.Object,
			"fileSize":  strconv.Itoa(res.FileSize),
			"status":    res.ProcessStatus,
		})
		if !strings.EqualFold(res.ProcessStatus, "OK") {
			detail := fmt.Sprintf("process finished with status %q (RequestId %s)", res.ProcessStatus, ids["RequestId"])
			return actionapi.Result{Outcome: actionapi.Permanent, Detail: detail, IDs: ids, Err: errors.New("oss: " + detail)}
		}
		return actionapi.Result{Outcome: actionapi.Delivered, IDs: ids,
			Detail: fmt.Sprintf("saved oss://%s/%s (%d bytes)", res.Bucket, res.Object, res.FileSize)}
	}
	res, err := s.i.client.AsyncProcessObject(ctx, &osssdk.AsyncProcessObjectRequest{Bucket: &r.bucket, Key: &r.key, AsyncProcess: &r.process})
	if err != nil {
		return failure(err)
	}
	reqID := res.RequestId
	if reqID == "" {
		reqID = res.Headers.Get("X-Oss-Request-Id")
	}
	return actionapi.Result{
		Outcome: actionapi.Delivered,
		Detail:  fmt.Sprintf("task %s submitted", res.TaskId),
		IDs:     nonEmpty(map[string]string{"TaskId": res.TaskId, "EventId": res.EventId, "RequestId": reqID}),
	}
}

// retryableCodes are OSS error codes worth another try whatever the status.
var retryableCodes = map[string]bool{
	"RequestTimeTooSkewed": true, // the clock may be corrected by then
	"ServiceUnavailable":   true,
	"InternalError":        true,
}

// failure classifies an SDK error: OSS's own errors by status and code, a
// request the SDK refused to build as permanent, the rest as aliyun.Failed
// does.
func failure(err error) actionapi.Result {
	var se *osssdk.ServiceError
	if errors.As(err, &se) {
		detail := fmt.Sprintf("%s: %s (RequestId %s)", se.Code, se.Message, se.RequestID)
		r := actionapi.Result{
			Outcome: actionapi.Permanent,
			Detail:  detail,
			IDs:     nonEmpty(map[string]string{"RequestId": se.RequestID}),
			Err:     &aliyun.OpError{Service: "oss", Detail: detail, Err: err},
		}
		if actionapi.RetryableStatus(se.StatusCode) || retryableCodes[se.Code] {
			r.Outcome = actionapi.Retryable
			r.RetryAfter, _ = actionapi.RetryAfter(&http.Response{Header: se.Headers})
		}
		return r
	}
	var ce *osssdk.ClientError
	if errors.As(err, &ce) {
		return actionapi.Failed(actionapi.Permanent, &aliyun.OpError{Service: "oss", Detail: err.Error(), Err: err})
	}
	return aliyun.Failed("oss", err)
}

func nonEmpty(m map[string]string) map[string]string {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}
