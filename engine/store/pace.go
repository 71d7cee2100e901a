package store

import (
	"context"
	"sync"
	"time"
)

// pacer keeps Local's pacing in memory: Local serves one process, so its
// slots are that process's, and a restart begins every key afresh.
type pacer struct {
	mu  sync.Mutex
	tat map[string]time.Time // per key, when its next slot is due had no burst been allowed
}

var _ Pacer = (*Local)(nil)

// Pace implements Pacer.
func (s *Local) Pace(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	if err := CheckPace(key, every, burst); err != nil {
		return 0, err
	}
	p := &s.pace
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tat == nil {
		p.tat = map[string]time.Time{}
	}
	tat := p.tat[key]
	if tat.Before(now) {
		tat = now
	}
	tat = tat.Add(every)
	p.tat[key] = tat
	return PaceWait(tat, now, every, burst), nil
}
