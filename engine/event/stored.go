package event

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// UnmarshalStored decodes an event as livehook stored it (the journal,
// the embedded store's db, PostgreSQL): its payload's numbers come back as
// decoding the callback made them, int64 when integral, else float64.
// json.Unmarshal would make them all float64, so a retry's template would
// render a payload's 1234567 as 1.234567e+06 where the first attempt, or
// the condition that matched, saw 1234567.
func UnmarshalStored(data []byte, ev *Event) error {
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
