package engine

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/livehook/livehook/engine/actionapi"
	"github.com/livehook/livehook/engine/store"
)

// Actions pace through the store the engine runs on: replicas sharing it
// share a chat service's rate.
func TestActionsPaceThroughTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("rules:\n  - name: r\n    do:\n      - type: paced\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got store.Pacer
	rec := &recorder{}
	reg := actionapi.NewRegistry()
	if err := reg.Add(actionapi.Type{Name: "paced", Open: func(s actionapi.Settings) (actionapi.Instance, error) {
		got = s.Deps.Pacer
		return rec, nil
	}}); err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{RulesPath: path, Registry: func() (*actionapi.Registry, error) { return reg, nil },
		Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Rules().Retire()
	if got != st {
		t.Errorf("the action was opened with pacer %v, want the engine's store", got)
	}
}
