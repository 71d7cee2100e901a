// Package queryfile reads the event file of a callback that Aliyun sends
// as a GET, its content in the query: a JSON object of the parameters.
package queryfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/livehook/livehook/engine/sourceapi"
)

// Fixture reads file as a JSON object of a callback's query parameters,
// {"action": "publish", "id": "room42", ...}, into the request that sends
// them as source name; numbers are sent as written.
func Fixture(name string, file []byte) (*sourceapi.Request, error) {
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.UseNumber()
	var params map[string]any
	if err := dec.Decode(&params); err != nil || params == nil {
		return nil, errors.New("want a JSON object of the query parameters, such as {\"action\": \"publish\", \"id\": \"room42\"}")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("want one JSON object of the query parameters, and nothing after it")
	}
	q := url.Values{}
	for k, v := range params {
		switch v := v.(type) {
		case string:
			q.Set(k, v)
		case json.Number:
			q.Set(k, v.String())
		default:
			return nil, fmt.Errorf("parameter %q: want a string or a number", k)
		}
	}
	return &sourceapi.Request{Name: name, Header: http.Header{}, Query: q}, nil
}
