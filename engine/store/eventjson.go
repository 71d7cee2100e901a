package store

import (
	"encoding/json"

	"github.com/livehook/livehook/engine/event"
)

// storedEvent decodes an event field with event.UnmarshalStored, so that
// the records holding an event read it back as it was accepted.
type storedEvent struct{ *event.Event }

func (s *storedEvent) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s.Event = &event.Event{}
	return event.UnmarshalStored(b, s.Event)
}

// UnmarshalJSON implements json.Unmarshaler: see storedEvent.
func (r *EventRecord) UnmarshalJSON(b []byte) error {
	type plain EventRecord
	aux := struct {
		*plain
		Event storedEvent `json:"event"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	r.Event = aux.Event.Event
	return nil
}

// UnmarshalJSON implements json.Unmarshaler: see storedEvent.
func (r *journalRecord) UnmarshalJSON(b []byte) error {
	type plain journalRecord
	aux := struct {
		*plain
		Event storedEvent `json:"event,omitempty"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	r.Event = aux.Event.Event
	return nil
}
