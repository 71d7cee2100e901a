package event

// DecodeVideoModeration decodes ApsaraVideo Live's video moderation
// callback (AddLiveDetectNotifyConfig's NotifyUrl), POSTed when a stream's
// sampled pictures are found to break the rules. The docs give no body
// for it (see docs/aliyun-callbacks.md), so it is read tolerantly: the
// stream is required, in either naming; the picture (OssBucket, OssEndpoint,
// OssObject) and the most severe verdict found anywhere in the body are
// taken when they are there.
func DecodeVideoModeration(body []byte) (*Event, error) {
	ev, obj, err := decodeModeration(SourceVideoModeration, body)
	if err != nil {
		return nil, err
	}
	ev.OSSBucket = bestText(obj, "OssBucket", "oss_bucket")
	ev.OSSEndpoint = bestText(obj, "OssEndpoint", "oss_endpoint")
	ev.URI = bestText(obj, "OssObject", "oss_object")
	ev.Format = FormatOf(ev.URI)
	return ev, nil
}

// DecodeAudioModeration decodes ApsaraVideo Live's audio moderation
// callback (AddLiveAudioAuditNotifyConfig). Its body is the configured
// CallbackTemplate, by default {"domain", "app", "stream", "timestamp",
// "result": [{"scene", "label", "suggestion", "rate", "details": [...]}]}:
// the stream is required, in either naming, and the most severe verdict in
// result is the event's.
func DecodeAudioModeration(body []byte) (*Event, error) {
	ev, _, err := decodeModeration(SourceAudioModeration, body)
	return ev, err
}

func decodeModeration(source string, body []byte) (*Event, map[string]any, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	ev := &Event{Source: source, Kind: KindModeration, Payload: obj}
	if err := streamOf(ev, obj); err != nil {
		return nil, nil, err
	}
	var v verdict
	strongest(obj, &v)
	ev.Suggestion, ev.Label, ev.Scene, ev.Rate = v.suggestion, v.label, v.scene, v.rate
	ev.Time = unixSeconds(obj, "timestamp", "Timestamp", "TimeStamp", "time")
	return ev, obj, nil
}
