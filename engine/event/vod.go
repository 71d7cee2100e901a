package event

// VOD event types that livehook reads the fields of; any other is taken as
// it comes (one callback URL receives all of a region's VOD events).
const (
	VODLiveRecordComplete = "AddLiveRecordVideoComplete"  // a live recording became a VOD video
	VODLiveComposeStart   = "LiveRecordVideoComposeStart" // VOD started composing a live recording
)

// DecodeVOD decodes an ApsaraVideo VOD event notification (HTTP callback),
// a POSTed JSON body with EventType and EventTime (RFC 3339, UTC). For the
// live recording events, AddLiveRecordVideoComplete and
// LiveRecordVideoComposeStart, it reads VideoId, Status (success or fail),
// DomainName, AppName and StreamName and the recording's RecordStartTime
// and RecordEndTime, and refuses them mistyped. Other event types are best
// effort: a mistyped field stays zero and the body is the payload.
func DecodeVOD(body []byte) (*Event, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	ev := &Event{Source: SourceVOD, Kind: KindVOD, Payload: obj}
	if ev.Event, err = text(obj, "EventType"); err != nil {
		return nil, err
	}
	if ev.Event == "" {
		return nil, refuse("missing_field", "missing required field \"EventType\"")
	}
	live := ev.Event == VODLiveRecordComplete || ev.Event == VODLiveComposeStart
	var errs []error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"VideoId", &ev.VideoID}, {"Status", &ev.Status},
		{"DomainName", &ev.Domain}, {"AppName", &ev.App}, {"StreamName", &ev.Stream},
	} {
		v, err := text(obj, f.name)
		*f.dst = v
		errs = append(errs, err)
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"EventTime", &ev.Time}, {"RecordStartTime", &ev.StartTime}, {"RecordEndTime", &ev.StopTime}} {
		v, err := rfc3339(obj, f.name)
		*f.dst = v
		errs = append(errs, err)
	}
	if live {
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		for _, f := range []struct{ name, value string }{{"VideoId", ev.VideoID}, {"Status", ev.Status}} {
			if f.value == "" {
				return nil, refuse("missing_field", "missing required field %q", f.name)
			}
		}
	}
	return ev, nil
}
