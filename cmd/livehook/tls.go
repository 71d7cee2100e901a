package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in a pair of files and loads them
// again when either changes, so a renewed certificate (certbot,
// cert-manager) is picked up without a restart. It looks at the files'
// size and modification time at each handshake: two stat calls, next to
// a handshake's milliseconds of cryptography.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp // of certFile and keyFile when last loaded or tried
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: st.Size(), mod: st.ModTime()}
}

// newCertReloader loads the pair; the daemon does not start without it.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log,
		stamp: [2]fileStamp{stampOf(certFile), stampOf(keyFile)}}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	c.cert = &cert
	return c, nil
}

// GetCertificate is the tls.Config hook.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := [2]fileStamp{stampOf(c.certFile), stampOf(c.keyFile)}
	if now == c.stamp {
		return c.cert, nil
	}
	// Remember the stamps even if the load fails: a renewal writes the two
	// files one after the other, and the second write changes the stamps
	// again, so the next handshake tries once more without a log line per
	// handshake in between.
	c.stamp = now
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Warn("TLS certificate changed but does not load; still serving the previous one",
			"cert", c.certFile, "key", c.keyFile, "err", err)
		return c.cert, nil
	}
	c.cert = &cert
	c.log.Info("TLS certificate reloaded", "cert", c.certFile)
	return c.cert, nil
}
