package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func sendCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) error {
	fs := newFlagSet("send", "send [--url URL] [--key KEY [--host HOST] | --token TOKEN | --webhook-secret SECRET] EVENT.json\n\nPOST an event file to a running daemon and print its reply, signed or\nwith a token as the source's auth: in the rules asks. Give credentials\nthrough their variables, which stay out of the shell history.", stderr)
	url := fs.String("url", "http://127.0.0.1:8080/callbacks/record", "where to POST: /callbacks/record for Aliyun recording callbacks, /events/{source} for generic events")
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
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("send: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
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
