package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/secret"
	"github.com/livehook/livehook/engine/yamlconf"
	"github.com/livehook/livehook/internal/alicloud"
)

// Sweeper is `sweeper:`: where and how often to read back, from Aliyun
// Live's record of the callbacks it sent, those that livehook never
// received. The sweep itself is internal/sweeper's; the set only says
// what it is configured with, so an edit reloads with the rules.
type Sweeper struct {
	File string
	Line int
	// Region is the Live API's region, e.g. cn-shanghai.
	Region string
	// Endpoint is scheme://host[:port] of the Live API; "" for the default.
	Endpoint string
	// Key signs the API calls: from the settings, else the environment.
	Key alicloud.AccessKey
	// Interval is how often the daemon sweeps; 0 when it sweeps only on
	// request (livehook reconcile).
	Interval time.Duration
	// LookBack is how far back a sweep reads unless asked otherwise:
	// DefaultLookBack, or the interval and SweepSettle when longer.
	LookBack time.Duration
	// Domains are the domains to read the records of, by the source whose
	// callbacks the records are: streaming domains for recording callbacks,
	// ingest domains for stream callbacks.
	Domains map[string][]string
}

// Bounds of the sweeper's settings.
const (
	// MaxLookBack is how far back Aliyun keeps its record of callbacks.
	MaxLookBack = 7 * 24 * time.Hour
	// SweepSettle is how long a sweep leaves Aliyun's retries of a
	// callback to end (5 retries, at most seconds apart, within a 5 s
	// timeout each) before it looks for it: a callback still being
	// retried is not missing yet.
	SweepSettle = 2 * time.Minute
	// DefaultLookBack is a periodic sweep's look-back when none is set.
	DefaultLookBack = time.Hour
)

// SweptSources are the sources whose callbacks Aliyun keeps records of,
// the keys of the sweeper's domains.
var SweptSources = []string{event.SourceRecord, event.SourceStream}

type sweeperYAML struct {
	Region          string                 `yaml:"region"`
	Endpoint        string                 `yaml:"endpoint"`
	AccessKeyID     secret.Secret          `yaml:"access_key_id"`
	AccessKeySecret secret.Secret          `yaml:"access_key_secret"`
	Interval        yaml.Node              `yaml:"interval"`
	LookBack        yaml.Node              `yaml:"look_back"`
	Domains         map[string][]yaml.Node `yaml:"domains"`
}

// sweeperNode decodes `sweeper:`. It is one mapping in one file of a
// directory: two would leave it unclear which domains are swept.
func (l *loader) sweeperNode(file string, k, n *yaml.Node) {
	if l.sweeperAt != "" {
		l.diags.At(file, k, "sweeper: already configured at %s", l.sweeperAt)
		return
	}
	l.sweeperAt = fmt.Sprintf("%s:%d", file, k.Line)
	if n.Kind != yaml.MappingNode {
		l.diags.At(file, n, "sweeper: want a mapping with region and domains")
		return
	}
	var sy sweeperYAML
	if err := yamlconf.Decode(file, n, &sy); err != nil {
		l.addErr(file, n, err)
		return
	}
	l.set.Secrets.Add(sy.AccessKeyID.Reveal())
	l.set.Secrets.Add(sy.AccessKeySecret.Reveal())
	sw := &Sweeper{File: file, Line: k.Line, Region: sy.Region, Domains: map[string][]string{}}
	ok := true
	fail := func(at *yaml.Node, format string, args ...any) {
		if at == nil {
			at = n
		}
		l.diags.At(file, at, "sweeper: "+format, args...)
		ok = false
	}
	if err := alicloud.CheckRegion(sy.Region); err != nil {
		fail(valueAt(n, "region"), "%v", err)
	}
	if sy.Endpoint != "" {
		u, err := alicloud.ParseEndpoint(sy.Endpoint, "https://live.aliyuncs.com")
		if err != nil {
			fail(valueAt(n, "endpoint"), "%v", err)
		} else {
			sw.Endpoint = u.Scheme + "://" + u.Host
		}
	}
	key, err := alicloud.AccessKeyFor(sy.AccessKeyID, sy.AccessKeySecret, alicloud.EnvAccessKeyID, alicloud.EnvAccessKeySecret, l.set.Secrets)
	if err != nil {
		fail(valueAt(n, "access_key_id", "access_key_secret"), "%v", err)
	}
	sw.Key = key
	if sy.Interval.Kind != 0 {
		if err := sy.Interval.Decode(&sw.Interval); err != nil || sw.Interval <= 0 || sw.Interval > MaxLookBack-SweepSettle {
			fail(&sy.Interval, "interval: want a positive duration of at most %v, such as 10m (leave it out to sweep only on request)", MaxLookBack-SweepSettle)
		}
	}
	// Each sweep stops SweepSettle short of its start: a shorter look-back
	// and callbacks between two sweeps would never be looked at.
	sw.LookBack = max(DefaultLookBack, sw.Interval+SweepSettle)
	if sy.LookBack.Kind != 0 {
		if err := sy.LookBack.Decode(&sw.LookBack); err != nil || sw.LookBack <= 0 || sw.LookBack > MaxLookBack {
			fail(&sy.LookBack, "look_back: want a positive duration of at most 168h (Aliyun keeps 7 days of records), such as 1h")
		} else if sw.Interval > 0 && sw.LookBack < sw.Interval+SweepSettle {
			fail(&sy.LookBack, "look_back: %v leaves gaps between sweeps every %v: want at least the interval and %v more", sw.LookBack, sw.Interval, SweepSettle)
		}
	}
	l.sweeperDomains(file, n, &sy, sw, &ok)
	if ok {
		l.set.Sweeper = sw
	}
}

// sweeperDomains decodes `domains:`, each domain once under one source.
func (l *loader) sweeperDomains(file string, n *yaml.Node, sy *sweeperYAML, sw *Sweeper, ok *bool) {
	const example = "e.g. aliyun_live_record: [play.example.com]"
	at := valueAt(n, "domains")
	if at == nil {
		l.diags.At(file, n, "sweeper: domains is required, by the source their records are of (%s or %s), %s",
			event.SourceRecord, event.SourceStream, example)
		*ok = false
		return
	}
	seen := map[string]string{}
	yamlconf.ForEachKey(file, at, &l.diags, func(k, _ *yaml.Node) {
		src := k.Value
		if !slices.Contains(SweptSources, src) {
			l.diags.At(file, k, "sweeper: domains: %q: Aliyun keeps records only of %s (streaming domains) and %s (ingest domains) callbacks",
				src, event.SourceRecord, event.SourceStream)
			*ok = false
			return
		}
		for i := range sy.Domains[src] {
			d := &sy.Domains[src][i]
			name := strings.ToLower(d.Value)
			switch {
			case d.Kind != yaml.ScalarNode || !validDomain(name):
				l.diags.At(file, d, "sweeper: domains: %s: %q is not a domain name (%s)", src, d.Value, example)
				*ok = false
			case seen[name] == src:
				l.diags.At(file, d, "sweeper: domains: %s: %s is listed twice", src, d.Value)
				*ok = false
			default:
				seen[name] = src
				sw.Domains[src] = append(sw.Domains[src], name)
			}
		}
	})
	if *ok && len(sw.Domains) == 0 {
		l.diags.At(file, at, "sweeper: domains: list at least one domain (%s)", example)
		*ok = false
	}
}
