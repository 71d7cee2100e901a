package event

// DecodeSnapshot decodes ApsaraVideo Live's snapshot callback, POSTed to
// the snapshot configuration's Callback URL when a snapshot is stored in
// OSS. The docs give no body for it (see docs/aliyun-callbacks.md), so it
// is read tolerantly: the stream (domain, app and stream, or DomainName,
// AppName and StreamName) is required; event, the OSS bucket, endpoint and
// object and a creation time are taken under either naming when they are
// there; everything stays in the payload.
func DecodeSnapshot(body []byte) (*Event, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	ev := &Event{Source: SourceSnapshot, Kind: KindSnapshot, Payload: obj}
	if err := streamOf(ev, obj); err != nil {
		return nil, err
	}
	ev.Event = bestText(obj, "event", "Event")
	ev.OSSBucket = bestText(obj, "OssBucket", "oss_bucket")
	ev.OSSEndpoint = bestText(obj, "OssEndpoint", "oss_endpoint")
	ev.URI = bestText(obj, "OssObject", "oss_object")
	ev.Format = FormatOf(ev.URI)
	ev.Time = unixSeconds(obj, "CreateTime", "create_time", "time", "timestamp")
	return ev, nil
}
