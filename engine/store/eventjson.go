package store

import (
	"encoding/json"

	"github.com/livehook/livehook/engine/event"
)

// UnmarshalJSON implements json.Unmarshaler: see event.Stored.
func (r *EventRecord) UnmarshalJSON(b []byte) error {
	type plain EventRecord
	aux := struct {
		*plain
		Event event.Stored `json:"event"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	r.Event = aux.Event.Event
	return nil
}

// UnmarshalJSON implements json.Unmarshaler: see event.Stored.
func (r *journalRecord) UnmarshalJSON(b []byte) error {
	type plain journalRecord
	aux := struct {
		*plain
		Event event.Stored `json:"event,omitempty"`
	}{plain: (*plain)(r)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	r.Event = aux.Event.Event
	return nil
}
