package dingtalk

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/livehook/livehook/engine/tmpl"
	"github.com/livehook/livehook/internal/textcut"
)

// message is a robot message. The JSON names follow DingTalk's own,
// inconsistent casing: atUserIds but singleURL and actionURL.
type message struct {
	MsgType    string          `json:"msgtype"`
	Text       *textBody       `json:"text,omitempty"`
	Markdown   *markdownBody   `json:"markdown,omitempty"`
	ActionCard *actionCardBody `json:"actionCard,omitempty"`
	At         *mentions       `json:"at,omitempty"`
}

type textBody struct {
	Content string `json:"content"`
}

type markdownBody struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

type actionCardBody struct {
	Title          string       `json:"title"`
	Text           string       `json:"text"`
	BtnOrientation string       `json:"btnOrientation,omitempty"` // "0" or "1": a string, not a number
	SingleTitle    string       `json:"singleTitle,omitempty"`
	SingleURL      string       `json:"singleURL,omitempty"`
	Btns           []buttonBody `json:"btns,omitempty"`
}

type buttonBody struct {
	Title     string `json:"title"`
	ActionURL string `json:"actionURL"`
}

type mentions struct {
	AtMobiles []string `json:"atMobiles,omitempty"`
	AtUserIDs []string `json:"atUserIds,omitempty"`
	IsAtAll   bool     `json:"isAtAll"`
}

// draft is a rendered message whose text may still have to be cut.
type draft struct {
	msg  *message
	text *string // the message's main text, the part that is cut
	// mobiles are mentioned in markdown text, which DingTalk highlights
	// only where the text says @<mobile>.
	mobiles []string
}

// render renders p, which complete has validated, into a draft.
func (p *Params) render(data map[string]any) (*draft, error) {
	var err error
	field := func(name string, t *tmpl.Template) string {
		if err != nil || t.IsZero() {
			return ""
		}
		s, e := t.Render(data)
		switch {
		case e != nil:
			err = fmt.Errorf("%s: %w", name, e)
		case strings.TrimSpace(s) == "":
			err = fmt.Errorf("%s rendered empty", name)
		}
		return s
	}
	text, title := field("text", &p.Text), field("title", &p.Title)
	m := &message{MsgType: p.MsgType}
	d := &draft{msg: m}
	switch p.MsgType {
	case msgText:
		m.Text = &textBody{Content: text}
		d.text = &m.Text.Content
	case msgMarkdown:
		m.Markdown = &markdownBody{Title: title, Text: text}
		d.text, d.mobiles = &m.Markdown.Text, p.AtMobiles
	case msgActionCard:
		card := &actionCardBody{
			Title: title, Text: text, BtnOrientation: p.BtnOrientation,
			SingleTitle: field("single_title", &p.SingleTitle), SingleURL: field("single_url", &p.SingleURL),
		}
		for i := range p.Btns {
			card.Btns = append(card.Btns, buttonBody{
				Title:     field(fmt.Sprintf("btns[%d].title", i), &p.Btns[i].Title),
				ActionURL: field(fmt.Sprintf("btns[%d].action_url", i), &p.Btns[i].ActionURL),
			})
		}
		m.ActionCard = card
		d.text = &card.Text
	}
	if err != nil {
		return nil, err
	}
	if len(p.AtMobiles) > 0 || len(p.AtUserIDs) > 0 || p.AtAll {
		m.At = &mentions{AtMobiles: p.AtMobiles, AtUserIDs: p.AtUserIDs, IsAtAll: p.AtAll}
	}
	return d, nil
}

// DingTalk refuses a message over 20000 bytes (errcode 460101). A cut
// alert beats a refused one, so the text is shortened to fit, visibly.
const (
	maxBody = 20000
	marker  = "…(truncated)"
)

// encode returns the request body, cutting the text (never the title, the
// buttons or the mentions) until the body fits maxBody.
func (d *draft) encode() (body []byte, truncated bool, err error) {
	head := *d.text
	*d.text = d.finish(head)
	for ; ; truncated = true {
		body, err = marshal(d.msg)
		if err != nil || len(body) <= maxBody || head == "" {
			return body, truncated, err
		}
		// A byte cut from head takes at least a byte off the body; head
		// shrinks on every pass, so this ends.
		head = textcut.Prefix(head, len(head)-(len(body)-maxBody)-len(marker))
		*d.text = d.finish(head + marker)
	}
}

// finish appends the @<mobile> marks that text lacks.
func (d *draft) finish(text string) string {
	var missing []string
	for _, m := range d.mobiles {
		if !strings.Contains(text, "@"+m) {
			missing = append(missing, "@"+m)
		}
	}
	if len(missing) == 0 {
		return text
	}
	return text + "\n\n" + strings.Join(missing, " ")
}

// marshal encodes m without escaping <, > and &, which markdown uses and
// which would count six bytes each against the limit.
func marshal(m *message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// sign is DingTalk's 加签 signature of a millisecond timestamp, ready to
// put in a query: urlEncode(base64(HmacSHA256(secret, ts+"\n"+secret))).
func sign(ts, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "\n" + secret))
	return url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil)))
}
