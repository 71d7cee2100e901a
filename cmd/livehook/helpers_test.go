package main

import (
	"encoding/json"
	"io"
	"testing"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func decodeJSON(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	return m
}

// hashOfRules is the hash the daemon reports for the rules now at path.
func hashOfRules(t *testing.T, path string) string {
	t.Helper()
	set, err := loadForCLI(path, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer set.Retire()
	return set.Hash
}
