package local

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// writes records each Write to the terminal, to tell lines written together.
type writes struct {
	mu sync.Mutex
	w  []string
}

func (r *writes) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w = append(r.w, string(b))
	return len(b), nil
}

func (r *writes) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.w, "")
}

// TestDevKeyLineIsVerbatim: under `make run` the gateway's development key line starts the
// terminal line with "API key:", and the curl example under it is ready to paste; every other
// line, and a key-like line from any other process, keeps its prefix.
func TestDevKeyLineIsVerbatim(t *testing.T) {
	t.Parallel()
	const (
		keyLine  = "API key: dt_local_0123456789abcdef_abcd  (tenant dev, roles admin,trader; local mode only)\n"
		curlLine = "  curl -H 'Authorization: Bearer dt_local_0123456789abcdef_abcd' 'http://127.0.0.1:8080/api/v1/data/stocks/7203.T'\n"
	)
	var term writes
	o := newOutput(&term, []string{gatewayName(), "data-stocks"})
	gw, fn := o.writer(gatewayName()), o.writer("data-stocks")
	for _, w := range []struct {
		lw   *lineWriter
		text string
	}{
		{gw, `{"level":"INFO","msg":"listening"}` + "\n"},
		{gw, keyLine + curlLine}, // printDevKey writes both at once
		{gw, "  curl not after a key line\n"},
		{fn, keyLine + curlLine},
		{gw, "API key: split "},
		{gw, "across writes\n"},
	} {
		if _, err := w.lw.Write([]byte(w.text)); err != nil {
			t.Fatal(err)
		}
	}
	gwPrefix, fnPrefix := string(gw.prefix), string(fn.prefix)
	want := gwPrefix + `{"level":"INFO","msg":"listening"}` + "\n" +
		keyLine + curlLine +
		gwPrefix + "  curl not after a key line\n" +
		fnPrefix + keyLine + fnPrefix + curlLine +
		"API key: split across writes\n"
	if got := term.String(); got != want {
		t.Fatalf("terminal:\n%s\nwant:\n%s", got, want)
	}
	var keyStarts int
	for _, line := range strings.SplitAfter(term.String(), "\n") {
		if strings.HasPrefix(line, "API key:") {
			keyStarts++
		}
	}
	if keyStarts != 2 {
		t.Errorf("%d lines start with \"API key:\", want the gateway's 2", keyStarts)
	}
	// The key line and its curl line reach the terminal in one write: no other process's
	// line can fall between them.
	term.mu.Lock()
	defer term.mu.Unlock()
	if !bytes.Contains([]byte(strings.Join(term.w, "\x00")), []byte(keyLine+curlLine)) {
		t.Errorf("the key and curl lines were split across writes: %q", term.w)
	}
}
