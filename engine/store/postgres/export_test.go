package postgres

// Abandon ends s as a killed process would: no claim is freed and no
// owner row removed; its heartbeat just stops.
func (s *Store) Abandon() {
	s.closeOnce.Do(func() {
		s.stop()
		s.bg.Wait()
		s.pool.Close()
	})
}

// Owner is s's owner id.
func (s *Store) Owner() int64 { return s.owner }

// ListenerUp reports whether s's listening connection is up.
func (s *Store) ListenerUp() bool { return s.listen.up.Load() }

// MigrationSQL is the SQL of schema version v.
func MigrationSQL(v int) string {
	ms, err := migrations()
	if err != nil || v < 1 || v > len(ms) {
		return ""
	}
	return ms[v-1].sql
}
