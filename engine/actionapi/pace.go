package actionapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/livehook/livehook/engine/store"
)

// Pacing spaces an instance's sends to what its service allows one account
// (a Slack webhook, a DingTalk robot): one every `every`, in bursts of up
// to `burst`. With Deps.Pacer the slots are the store's, so every replica
// sharing the store, and every instance sending to the same target, draw
// on one allowance; without one, and while the store fails, the process
// paces alone.
type Pacing struct {
	name   string // the instance's, for the log
	key    string
	every  time.Duration
	burst  int
	shared store.Pacer // nil: this process alone
	local  *rate.Limiter
	now    func() time.Time
	log    *slog.Logger
	alone  atomic.Bool // the store failed the last reservation
}

// Pacing paces the instance named name, which sends to service (its type)
// as target: what names the account, a webhook URL or a robot's token. It
// is a credential: the key the store knows the account by keeps only a
// hash of it.
func (d Deps) Pacing(name, service, target string, every time.Duration, burst int) *Pacing {
	return &Pacing{name: name, key: PaceKey(service, target), every: every, burst: burst,
		shared: d.Pacer, local: rate.NewLimiter(rate.Every(every), burst), now: d.Now, log: d.Logger}
}

// PaceKey is the store's key for the account target names at service: a
// hash, so the store never holds the credential.
func PaceKey(service, target string) string {
	sum := sha256.Sum256([]byte(target))
	return "pace/" + service + "/" + hex.EncodeToString(sum[:16])
}

// Wait waits for the instance's next send slot (a rate limiter's Wait, as
// Hold.Send takes it). A store that fails does not fail the delivery: the
// process paces alone meanwhile, and says so once.
func (p *Pacing) Wait(ctx context.Context) error {
	if p.shared != nil {
		wait, err := p.shared.Pace(ctx, p.key, p.now(), p.every, p.burst)
		if err == nil {
			if p.alone.Swap(false) {
				p.log.Info("pacing shared through the store again", "action", p.name)
			}
			return sleep(ctx, wait)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !p.alone.Swap(true) {
			p.log.Warn("pacing: the store failed, so this process paces alone until it answers", "action", p.name, "err", err)
		}
	}
	return p.local.Wait(ctx)
}

// sleep waits d, unless ctx ends first or would end before.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return fmt.Errorf("the next slot is in %v, after the attempt's deadline", d.Round(time.Millisecond))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
