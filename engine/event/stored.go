package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// UnmarshalStored decodes an event as livehook stored it (the journal,
// the embedded store's db, PostgreSQL) into ev, replacing what it held:
// its payload's numbers come back as decoding the callback made them,
// int64 when integral, else float64. json.Unmarshal would make them all
// float64, so a retry's template would render a payload's 1234567 as
// 1.234567e+06 where the first attempt, or the condition that matched,
// saw 1234567.
//
// Every claimed delivery reads its event back, and encoding/json's
// reflection was most of a claim's cost: an event as livehook writes it
// is read in one pass by the callbacks' parser instead, and anything else
// (an answer, a field of another type, a key Event does not name) is left
// to encoding/json, the reference FuzzUnmarshalStored holds the fast
// reading to.
func UnmarshalStored(data []byte, ev *Event) error {
	if got, ok := storedFast(data); ok {
		*ev = got
		return nil
	}
	return unmarshalStoredReference(data, ev)
}

// storedFast is UnmarshalStored's one-pass reading; false where it leaves
// the event to encoding/json.
func storedFast(data []byte) (Event, bool) {
	obj, ok := parseObject(data)
	if !ok {
		return Event{}, false
	}
	var ev Event
	return ev, fillStored(&ev, obj, data)
}

// Stored is an event field of a record livehook stored that decodes by
// UnmarshalStored, so the record reads its event back as it was accepted.
type Stored struct{ *Event }

// UnmarshalJSON implements json.Unmarshaler; null leaves it as it is.
func (s *Stored) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s.Event = &Event{}
	return UnmarshalStored(b, s.Event)
}

// UnmarshalStoredRecord decodes the event a stored record holds as its
// "event" member (the embedded store's event records) as a Stored field
// would, reading the record in the same one pass; nil if the record has
// no event, or a null one. Its other members are not read. A claim reads
// back the event of every delivery not held in memory since its commit.
func UnmarshalStoredRecord(data []byte) (*Event, error) {
	if ev, ok := storedRecordFast(data); ok {
		return ev, nil
	}
	var rec struct {
		Event Stored `json:"event"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, err
	}
	return rec.Event.Event, nil
}

// storedRecordFast is UnmarshalStoredRecord's one-pass reading; false
// where it leaves the record to encoding/json.
func storedRecordFast(data []byte) (*Event, bool) {
	rec, ok := parseObject(data)
	if !ok || foldsTo(rec, "event") {
		return nil, false
	}
	switch v := rec["event"].(type) {
	case nil:
		return nil, true
	case map[string]any:
		var ev Event
		if fillStored(&ev, v, data) {
			return &ev, true
		}
	}
	return nil, false
}

// foldsTo reports whether obj has a key other than name that encoding/json
// would take for name (it matches names case-insensitively): then it
// decides which of them counts.
func foldsTo(obj map[string]any, name string) bool {
	for k := range obj {
		if k != name && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// unmarshalStoredReference is UnmarshalStored by encoding/json.
func unmarshalStoredReference(data []byte, ev *Event) error {
	*ev = Event{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(ev); err != nil {
		return err
	}
	if err := normalize(ev.Payload, ""); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return nil
}

// fillStored sets ev's fields from obj, what parseObject made of data;
// false if a value is not one encoding/json would set its field to
// without a doubt, and then nothing ev holds counts.
func fillStored(ev *Event, obj map[string]any, data []byte) bool {
	for name, v := range obj {
		dst := storedField(ev, name)
		if dst == nil {
			return false // the answer, or a name only encoding/json's case-insensitive match would take
		}
		if v == nil {
			continue // null leaves a field as it is: zero
		}
		switch dst := dst.(type) {
		case *string:
			s, ok := v.(string)
			if !ok {
				return false
			}
			*dst = s
		case *int64:
			n, ok := v.(int64)
			if !ok {
				return false // a fraction or exponent, which encoding/json refuses for an integer
			}
			*dst = n
		case *float64:
			switch n := v.(type) {
			case float64:
				*dst = n
			case int64:
				// parseObject reads -0 as the integer 0; as a float the
				// sign is kept.
				if n == 0 && negativeZero(data) {
					return false
				}
				*dst = float64(n)
			default:
				return false
			}
		case *bool:
			b, ok := v.(bool)
			if !ok {
				return false
			}
			*dst = b
		case *time.Time:
			// encoding/json hands a time its text still escaped
			// (go.dev/issue/47353), and an escape makes it refuse the
			// time: with one anywhere, it decides.
			s, ok := v.(string)
			if !ok || bytes.IndexByte(data, '\\') >= 0 || dst.UnmarshalText([]byte(s)) != nil {
				return false
			}
		case *map[string]string:
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			args := make(map[string]string, len(m))
			for k, e := range m {
				if args[k], ok = e.(string); !ok {
					return false
				}
			}
			*dst = args
		case *map[string]any:
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			*dst = m
		}
	}
	return true
}

// negativeZero reports whether data may hold the number -0: "-0" ending
// where a number ends (a date's "-05" does not).
func negativeZero(data []byte) bool {
	for i := 0; ; i += 2 {
		j := bytes.Index(data[i:], []byte("-0"))
		if j < 0 {
			return false
		}
		i += j
		if end := i + 2; end == len(data) || bytes.IndexByte([]byte(",}] \t\r\n"), data[end]) >= 0 {
			return true
		}
	}
}

// storedField is the field of ev that name is the JSON name of; nil for
// the answer, and for a name Event's fields do not have.
func storedField(ev *Event, name string) any {
	switch name {
	case "id":
		return &ev.ID
	case "source":
		return &ev.Source
	case "kind":
		return &ev.Kind
	case "domain":
		return &ev.Domain
	case "app":
		return &ev.App
	case "stream":
		return &ev.Stream
	case "uri":
		return &ev.URI
	case "format":
		return &ev.Format
	case "duration":
		return &ev.Duration
	case "start_time":
		return &ev.StartTime
	case "stop_time":
		return &ev.StopTime
	case "event":
		return &ev.Event
	case "push_args":
		return &ev.PushArgs
	case "received_at":
		return &ev.ReceivedAt
	case "payload":
		return &ev.Payload
	case "ingest_domain":
		return &ev.IngestDomain
	case "time":
		return &ev.Time
	case "client_ip":
		return &ev.ClientIP
	case "node":
		return &ev.Node
	case "width":
		return &ev.Width
	case "height":
		return &ev.Height
	case "status":
		return &ev.Status
	case "video_id":
		return &ev.VideoID
	case "task_id":
		return &ev.TaskID
	case "reason":
		return &ev.Reason
	case "suggestion":
		return &ev.Suggestion
	case "label":
		return &ev.Label
	case "scene":
		return &ev.Scene
	case "rate":
		return &ev.Rate
	case "oss_bucket":
		return &ev.OSSBucket
	case "oss_endpoint":
		return &ev.OSSEndpoint
	case "codec":
		return &ev.Codec
	case "vbitrate":
		return &ev.VBitrate
	case "reconciled":
		return &ev.Reconciled
	}
	return nil
}
