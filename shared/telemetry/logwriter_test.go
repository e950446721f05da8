package telemetry

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a sink the test can read while the writer's goroutine writes to it.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBufferedWriterKeepsLinesWholeAndInOrder(t *testing.T) {
	var sink lockedBuffer
	w := NewBufferedWriter(&sink, time.Millisecond)
	const goroutines, lines = 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "g%d line %d %s\n", g, i, strings.Repeat("x", i%300))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, goroutines)
	got := strings.Split(strings.TrimSuffix(sink.String(), "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines, want %d", len(got), goroutines*lines)
	}
	for _, l := range got {
		var g, i int
		if n, _ := fmt.Sscanf(l, "g%d line %d", &g, &i); n != 2 || g < 0 || g >= goroutines {
			t.Fatalf("torn line %q", l)
		}
		if want := fmt.Sprintf("g%d line %d %s", g, next[g], strings.Repeat("x", next[g]%300)); l != want {
			t.Fatalf("line %q, want %q (torn or out of order)", l, want)
		}
		next[g]++
	}
	if sink.writes >= goroutines*lines/10 {
		t.Errorf("%d writes to the sink for %d lines: not batched", sink.writes, goroutines*lines)
	}
}

func TestBufferedWriterFlushesOnItsOwn(t *testing.T) {
	var sink lockedBuffer
	w := NewBufferedWriter(&sink, 5*time.Millisecond)
	defer w.Close()
	_, _ = w.Write([]byte("one line\n"))
	deadline := time.Now().Add(5 * time.Second)
	for sink.String() != "one line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("a buffered line never reached the sink: %q", sink.String())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBufferedWriterAfterClose(t *testing.T) {
	var sink lockedBuffer
	w := NewBufferedWriter(&sink, time.Hour)
	_, _ = w.Write([]byte("before\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("after\n"))
	if got := sink.String(); got != "before\nafter\n" {
		t.Fatalf("sink %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
