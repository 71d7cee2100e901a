package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"net/http"
	"strconv"
	"time"

	"github.com/livehook/livehook/engine/auth"
)

// sendCredentials are what `send` authenticates with, one scheme at a time.
type sendCredentials struct {
	key, host     string // Aliyun ALI-LIVE-SIGNATURE, or with vod X-VOD-SIGNATURE
	callbackURL   string // what X-VOD-SIGNATURE covers
	vod           bool   // the source signs as VOD does
	token         string // bearer
	webhookSecret string // Standard Webhooks
}

// Variables for the credentials: a flag's value shows in the shell
// history and in ps.
const (
	envSendKey           = "LIVEHOOK_SEND_KEY"
	envSendToken         = "LIVEHOOK_SEND_TOKEN"
	envSendWebhookSecret = "LIVEHOOK_SEND_WEBHOOK_SECRET"
)

func (c *sendCredentials) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.key, "key", "", "sign as Aliyun does with this NotifyAuthKey: ALI-LIVE-TIMESTAMP and ALI-LIVE-SIGNATURE; for VOD events with this PrivateKey: X-VOD-TIMESTAMP and X-VOD-SIGNATURE (env "+envSendKey+")")
	fs.StringVar(&c.host, "host", "", "the host a Live signature covers: the source's callback_host (default: the ingest domain of a stream callback, app in its query; else the host of --url)")
	fs.StringVar(&c.callbackURL, "callback-url", "", "the URL a VOD signature covers: the source's callback_url (default: --url with the source's path)")
	fs.StringVar(&c.token, "token", "", "send Authorization: Bearer with this token (env "+envSendToken+")")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "", "sign as Standard Webhooks with this secret, whsec_... or raw (env "+envSendWebhookSecret+")")
}

// fromEnv fills what the flags left empty from the variables.
func (c *sendCredentials) fromEnv(getenv func(string) (string, bool)) {
	if getenv == nil {
		return
	}
	for _, f := range []struct {
		dst *string
		env string
	}{{&c.key, envSendKey}, {&c.token, envSendToken}, {&c.webhookSecret, envSendWebhookSecret}} {
		if v, ok := getenv(f.env); ok && *f.dst == "" {
			*f.dst = v
		}
	}
}

// sign adds the headers of the configured scheme to req.
func (c *sendCredentials) sign(req *http.Request, body []byte, now time.Time) error {
	n := 0
	for _, s := range []string{c.key, c.token, c.webhookSecret} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return errors.New("give one of --key, --token and --webhook-secret")
	}
	if c.host != "" && (c.key == "" || c.vod) {
		return errors.New("--host is for --key on Live callbacks: it names the host the Aliyun signature covers")
	}
	if c.callbackURL != "" && (c.key == "" || !c.vod) {
		return errors.New("--callback-url is for --key on VOD events: it names the URL the VOD signature covers")
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	switch {
	case c.key != "" && c.vod:
		u := c.callbackURL
		if u == "" {
			u = req.URL.String()
		}
		req.Header.Set(auth.HeaderVODTimestamp, ts)
		req.Header.Set(auth.HeaderVODSignature, auth.VODSignature(u, ts, c.key))
	case c.key != "":
		host := c.host
		if host == "" {
			host = req.URL.Hostname()
		}
		req.Header.Set(auth.HeaderAliTimestamp, ts)
		req.Header.Set(auth.HeaderAliSignature, auth.AliyunSignature(host, ts, c.key))
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.webhookSecret != "":
		key, err := auth.WebhookKey(c.webhookSecret)
		if err != nil {
			return errors.New("--webhook-secret: " + err.Error())
		}
		var id [12]byte
		_, _ = rand.Read(id[:]) // crypto/rand does not fail
		msgID := "msg_" + hex.EncodeToString(id[:])
		req.Header.Set(auth.HeaderWebhookID, msgID)
		req.Header.Set(auth.HeaderWebhookTimestamp, ts)
		req.Header.Set(auth.HeaderWebhookSignature, auth.WebhookSignature(key, msgID, ts, body))
	}
	return nil
}
