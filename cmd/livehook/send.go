package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/livehook/livehook/engine/event"
	"github.com/livehook/livehook/engine/sourceapi"
)

func sendCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("send", "send [--source NAME] [--url URL] [--key KEY [--host HOST | --callback-url URL] | --token TOKEN | --webhook-secret SECRET] EVENT.json\n\nSend an event file to a running daemon as its source's sender would, and\nprint the reply, signed or with a token as the source's auth: in the rules\nasks. Give credentials through their variables, which stay out of the\nshell history.", stderr)
	target := fs.String("url", "http://127.0.0.1:8080", "where to send: a URL without a path takes the source's own, "+sourcePaths())
	name := fs.String("source", "", "send the event as coming from `NAME`, which decides how it is sent: "+sourceNames()+
		" (default: the source the path of --url names, else "+event.SourceRecord+")")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	var cred sendCredentials
	cred.flags(fs)
	if err := parse(fs, args, nil); err != nil {
		return err
	}
	cred.fromEnv(getenv)
	if fs.NArg() != 1 {
		fs.Usage()
		return &exitError{code: 2, msg: "send: want exactly one EVENT.json"}
	}
	file, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, body, err := sendRequest(ctx, sourceapi.Default(), *target, *name, file)
	if err != nil {
		return &exitError{code: 2, msg: "send: " + err.Error()}
	}
	cred.vod = signedAs(sourceapi.Default(), req.URL.Path, *name) == "vod_signature"
	if cred.key != "" && cred.host == "" && !cred.vod {
		cred.host = signedHost(sourceapi.Default(), req, body, *name)
	}
	if err := cred.sign(req, body, time.Now()); err != nil {
		return &exitError{code: 2, msg: "send: " + err.Error()}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	fmt.Fprintf(stdout, "%s\n%s", resp.Status, reply)
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: 1, msg: "send: the daemon refused the event"}
	}
	return nil
}

// sendRequest is the request that sends the event file as the source name
// would to target, and its body. Without a name, the source is the one
// target's path names, else Aliyun's recording callbacks (a proxy may
// mount them anywhere); a target without a path takes the source's own.
// A source called with a query (stream callbacks) gets the file's
// parameters in the URL.
func sendRequest(ctx context.Context, reg *sourceapi.Registry, target, name string, file []byte) (*http.Request, []byte, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, nil, err
	}
	name = sendSource(reg, u.Path, name)
	src, err := lookupSource(reg, name)
	if err != nil {
		return nil, nil, err
	}
	r, err := src.FromFile(name, file)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = src.PathFor(name)
	}
	if len(r.Query) > 0 {
		q := u.Query()
		for k, vs := range r.Query {
			q[k] = vs
		}
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, src.Methods[0], u.String(), bytes.NewReader(r.Body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	return req, r.Body, nil
}

// sendSource is the source an event file is sent as: name if given, else
// the one the path names, else Aliyun's recording callbacks.
func sendSource(reg *sourceapi.Registry, path, name string) string {
	if name != "" {
		return name
	}
	if _, n, ok := reg.Route(path); ok {
		return n
	}
	return event.SourceRecord
}

// signedAs is how the source an event is sent as signs it: its Auth, ""
// when it does not sign or is unknown (the daemon will say so).
func signedAs(reg *sourceapi.Registry, path, name string) string {
	src, err := lookupSource(reg, sendSource(reg, path, name))
	if err != nil {
		return ""
	}
	return src.Auth
}

// signedHost is the host an Aliyun signature of req covers when --host
// does not say: the ingest domain of a callback that names one, as Aliyun
// signs its stream callbacks over the ingest domain they are configured
// on; "" for the host of the URL, over which it signs every other kind.
func signedHost(reg *sourceapi.Registry, req *http.Request, body []byte, name string) string {
	name = sendSource(reg, req.URL.Path, name)
	src, err := lookupSource(reg, name)
	if err != nil {
		return ""
	}
	ev, err := src.Decode(&sourceapi.Request{Name: name, Header: req.Header, Query: req.URL.Query(), Body: body})
	if err != nil {
		return "" // the daemon will say what is wrong with it
	}
	return ev.IngestDomain
}
