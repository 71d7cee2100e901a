package pgtest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Proxy stands between a store and the test database on a loopback
// port, so a test can cut the database off (as a failover or a network
// partition would) and bring it back, without stopping the server other
// tests use.
type Proxy struct {
	t      testing.TB
	target string
	mu     sync.Mutex
	ln     net.Listener // nil while cut
	addr   string
	conns  map[net.Conn]bool
	lose   string // the command tag whose reply to lose; "" for none
	lost   bool
}

// NewProxy starts a proxy to the server dsn names and returns it with the
// DSN to connect through it.
func NewProxy(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: u.Host, conns: map[net.Conn]bool{}}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.Cut)
	u.Host = p.addr
	return p, u.String()
}

func (p *Proxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // cut meanwhile
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go pipe(s, c)
		go p.replies(c, s)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// replies forwards what the server sends to the client, message by
// message, and cuts the connection instead of forwarding the reply that
// LoseReply armed.
func (p *Proxy) replies(client, server net.Conn) {
	defer client.Close()
	defer server.Close()
	r := bufio.NewReader(server)
	// The answer to a request for TLS is one byte: 'N' is no and the
	// messages follow; after 'S' they are encrypted, and only copied.
	b, err := r.Peek(1)
	if err != nil {
		return
	}
	if first := b[0]; first == 'N' || first == 'S' {
		_, _ = r.Discard(1)
		if _, err := client.Write([]byte{first}); err != nil {
			return
		}
		if first == 'S' {
			_, _ = io.Copy(client, r)
			return
		}
	}
	for {
		// A message: its type, its length (which counts itself), its body.
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		if n < 0 {
			return
		}
		msg := make([]byte, 5+n)
		copy(msg, head[:])
		if _, err := io.ReadFull(r, msg[5:]); err != nil {
			return
		}
		if head[0] == 'C' && p.loses(string(msg[5:])) { // CommandComplete: its tag
			return
		}
		if _, err := client.Write(msg); err != nil {
			return
		}
	}
}

// loses reports whether a reply with tag is the one to lose, and disarms.
func (p *Proxy) loses(tag string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lose == "" || !strings.HasPrefix(tag, p.lose) {
		return false
	}
	p.lose, p.lost = "", true
	return true
}

// LoseReply arms the proxy to cut the connection that next gets a reply
// whose command tag starts with tag ("COMMIT", "UPDATE"), once the server
// has done the command and before the client hears of it: the client's
// call fails without knowing that it succeeded, as when a connection is
// cut at the wrong moment.
func (p *Proxy) LoseReply(tag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose, p.lost = tag, false
}

// Lost reports whether the reply LoseReply armed was lost.
func (p *Proxy) Lost() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

// Cut drops every connection through the proxy and refuses new ones.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore takes connections again, on the same port.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.listen(p.addr)
}
