package rules

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/yamlconf"
)

// Publish callbacks name the ingest domain a stream was pushed to;
// recording, snapshot and moderation callbacks name the streaming domain
// it plays on. `domains:` maps the first to the second, so that `domain`
// means the same in every event and rules can join a publish with its
// recordings (by: [domain, app, stream]).

// MapDomain makes ev's domain the streaming domain when it is an ingest
// domain of the `domains:` map, keeping the ingest domain in
// ev.IngestDomain. Domain names are compared without regard to case. A nil
// set maps nothing.
func (s *Set) MapDomain(ev *event.Event) {
	if s == nil || len(s.Domains) == 0 {
		return
	}
	streaming, ok := s.Domains[strings.ToLower(ev.Domain)]
	if !ok {
		return
	}
	if ev.IngestDomain == "" {
		ev.IngestDomain = ev.Domain
	}
	ev.Domain = streaming
}

// domainName is a host name as Aliyun's domains are written: no scheme,
// port, path or wildcard.
var domainName = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$`)

func validDomain(s string) bool { return len(s) <= 253 && domainName.MatchString(s) }

// domainsNode decodes `domains:` into the set. Across the files of a
// directory the entries are one map: an ingest domain may be mapped once,
// and a domain is an ingest domain or a streaming domain, never both (a
// chain would make domain depend on the order of mapping).
func (l *loader) domainsNode(file string, n *yaml.Node) {
	const example = "e.g. push.example.com: play.example.com"
	if n.Kind != yaml.MappingNode {
		l.diags.At(file, n, "domains: want a mapping of ingest domains to the streaming domains they play on, %s", example)
		return
	}
	if l.set.Domains == nil {
		l.set.Domains, l.domainsAt = map[string]string{}, map[string]string{}
	}
	yamlconf.ForEachKey(file, n, &l.diags, func(k, v *yaml.Node) {
		ingest := strings.ToLower(k.Value)
		if k.Kind != yaml.ScalarNode || !validDomain(ingest) {
			l.diags.At(file, k, "domains: %q is not a domain name (%s)", k.Value, example)
			return
		}
		streaming := strings.ToLower(v.Value)
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || !validDomain(streaming) {
			l.diags.At(file, v, "domains: %s: want the streaming domain it plays on, a domain name (%s)", k.Value, example)
			return
		}
		at := fmt.Sprintf("%s:%d", file, k.Line)
		switch prev, dup := l.domainsAt[ingest]; {
		case dup:
			l.diags.At(file, k, "domains: %s is already mapped at %s", k.Value, prev)
		case ingest == streaming:
			l.diags.At(file, v, "domains: %s is mapped to itself; leave it out", k.Value)
		case l.set.Domains[streaming] != "":
			l.diags.At(file, v, "domains: %s is an ingest domain itself (at %s): map each ingest domain straight to its streaming domain", v.Value, l.domainsAt[streaming])
		case isValue(l.set.Domains, ingest):
			l.diags.At(file, k, "domains: %s is a streaming domain of another entry: map each ingest domain straight to its streaming domain", k.Value)
		default:
			l.set.Domains[ingest], l.domainsAt[ingest] = streaming, at
		}
	})
}

func isValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}
