package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// signals are the coalesced wake-ups of this process's waiters: new
// events to evaluate, timers set, jobs that may be claimable sooner.
type signals struct {
	events chan struct{}
	timers chan struct{}
	jobs   chan struct{}
}

func newSignals() *signals {
	return &signals{events: make(chan struct{}, 1), timers: make(chan struct{}, 1), jobs: make(chan struct{}, 1)}
}

// all wakes every waiter: what changed is unknown.
func (g *signals) all() {
	signal(g.events)
	signal(g.timers)
	signal(g.jobs)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// channels are the NOTIFY channels of one schema, so that deployments
// sharing a database do not wake each other.
type channels struct {
	events, timers, jobs string
}

func channelsFor(schema string) channels {
	return channels{events: "livehook." + schema + ".events", timers: "livehook." + schema + ".timers", jobs: "livehook." + schema + ".jobs"}
}

// listener holds the connection that LISTENs to the other processes'
// notifications, reconnecting when it drops. While it is down, nothing
// is heard: waiters are woken every poll instead.
type listener struct {
	cfg   *pgx.ConnConfig
	chans channels
	sig   *signals
	poll  time.Duration
	up    atomic.Bool
}

func newListener(cfg *pgx.ConnConfig, chans channels, sig *signals, poll time.Duration) *listener {
	return &listener{cfg: cfg.Copy(), chans: chans, sig: sig, poll: poll}
}

// run listens until ctx ends.
func (l *listener) run(ctx context.Context) {
	var polling sync.WaitGroup
	defer polling.Wait()
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	polling.Go(func() { l.pollWhileDown(pollCtx) })
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.listen(ctx)
		l.up.Store(false)
		// What was notified while down is unknown: everyone looks again.
		l.sig.all()
		if err == nil || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listen connects, listens and relays notifications until the connection
// fails or ctx ends.
func (l *listener) listen(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ch := range []string{l.chans.events, l.chans.timers, l.chans.jobs} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	l.up.Store(true)
	// Listening now: anything notified before was missed.
	l.sig.all()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		switch n.Channel {
		case l.chans.events:
			signal(l.sig.events)
		case l.chans.timers:
			signal(l.sig.timers)
		case l.chans.jobs:
			signal(l.sig.jobs)
		}
	}
}

// pollWhileDown wakes job waiters every poll while nothing can be heard.
// (Unevaluated polls on its own, listener or not.)
func (l *listener) pollWhileDown(ctx context.Context) {
	t := time.NewTicker(l.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !l.up.Load() {
				signal(l.sig.jobs)
			}
		}
	}
}

// notifier sends this process's notifications, outside the transactions
// that cause them and coalesced: a NOTIFY inside a transaction takes a
// database-wide lock at commit, which would serialise the very commits
// that group commit lets run together. The notifications need no
// durability, so they commit asynchronously.
type notifier struct {
	pool    *pgxpool.Pool
	mu      sync.Mutex
	pending map[string]bool
	kick    chan struct{}
}

// notifySpacing is the least time between two notifications of one
// process: under load a burst of changes is one wake-up for the others.
const notifySpacing = 2 * time.Millisecond

func newNotifier(pool *pgxpool.Pool) *notifier {
	return &notifier{pool: pool, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// notify asks for a notification on channel ch soon.
func (n *notifier) notify(ch string) {
	n.mu.Lock()
	n.pending[ch] = true
	n.mu.Unlock()
	signal(n.kick)
}

// run sends what is asked until ctx ends. A notification that fails is
// not sent again: the others poll while they cannot hear, and one lost
// while they can only delays them until their next due time or poll.
func (n *notifier) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		}
		n.mu.Lock()
		chs := make([]string, 0, len(n.pending))
		for ch := range n.pending {
			chs = append(chs, ch)
		}
		clear(n.pending)
		n.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = n.pool.Exec(sctx, `SELECT set_config('synchronous_commit', 'off', true), pg_notify(ch, '') FROM unnest($1::text[]) AS ch`, chs)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(notifySpacing):
		}
	}
}
