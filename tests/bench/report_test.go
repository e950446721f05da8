package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteKeepsHandNotes checks that a second run replaces the measured part of the report
// and keeps what was written by hand below the marker.
func TestWriteKeepsHandNotes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	r := &Report{Date: time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC), Commit: "aaaaaaa", Command: defaultCommand}
	if err := write(out, r); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	note := "\nOther builds ran on the same cores during this run.\n"
	if err := os.WriteFile(out, append(b, note...), 0o644); err != nil {
		t.Fatal(err)
	}
	r.Commit = "bbbbbbb"
	if err := write(out, r); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(out)
	s := string(b)
	if !strings.Contains(s, "`bbbbbbb`") || strings.Contains(s, "aaaaaaa") {
		t.Errorf("the measured part was not replaced:\n%s", s)
	}
	if strings.Count(s, notesMarker) != 1 || !strings.HasSuffix(s, notesMarker+"\n"+note) {
		t.Errorf("the hand-written notes were not kept once, at the end:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(out), "benchmarks.json")); err != nil {
		t.Error(err)
	}
}
