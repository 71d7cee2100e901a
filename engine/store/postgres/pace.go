package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/livehook/livehook/engine/store"
)

var _ store.Pacer = (*Store)(nil)

// Pace implements store.Pacer in one statement: the upsert locks the key's
// row, so reservations from any number of processes take one slot each,
// in turn. Times are the callers': clocks that disagree by d let a key's
// sends come up to d early.
func (s *Store) Pace(ctx context.Context, key string, now time.Time, every time.Duration, burst int) (time.Duration, error) {
	if err := store.CheckPace(key, every, burst); err != nil {
		return 0, err
	}
	var tat time.Time
	err := s.pool.QueryRow(ctx, `INSERT INTO livehook_pace AS p (key, tat)
		VALUES ($1, $2::timestamptz + $3::float8 * interval '1 microsecond')
		ON CONFLICT (key) DO UPDATE SET tat = greatest(p.tat, $2::timestamptz) + $3::float8 * interval '1 microsecond'
		RETURNING tat`, []byte(key), now, float64(every.Microseconds())).Scan(&tat)
	if err != nil {
		return 0, fmt.Errorf("pace: %w", err)
	}
	return store.PaceWait(tat, now, every, burst), nil
}
