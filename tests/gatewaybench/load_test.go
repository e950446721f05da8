package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestErrorKind(t *testing.T) {
	cases := map[string]struct{ in, want string }{
		"dial": {`Get "http://127.0.0.1:41000/api/v1/data/stocks/7203.T": dial tcp 127.0.0.1:41000: connect: cannot assign requested address`,
			"dial tcp: connect: cannot assign requested address"},
		"reset": {`Get "http://127.0.0.1:41000/x": read tcp 127.0.0.1:52344->127.0.0.1:41000: read: connection reset by peer`,
			"read tcp: read: connection reset by peer"},
		"timeout": {`Get "http://127.0.0.1:41000/x": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
			"context deadline exceeded (Client.Timeout exceeded while awaiting headers)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := errorKind(tc.in); got != tc.want {
				t.Errorf("errorKind(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if got := errorMix(map[string]int{"a": 1, "b": 5, "c": 3, "d": 2}); got != "5× b; 3× c; 2× d; 1 other causes" {
		t.Errorf("errorMix = %q", got)
	}
}

func TestReadInside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.log")
	warm := `{"msg":"access","ms":50,"upstream_ms":1}` + "\n"                                      // before the offset: not counted
	lines := warm + `{"msg":"listening"}` + "\n" + `{"msg":"access","ms":0.9,"status":401}` + "\n" // no upstream_ms: refused before any call
	for i := 1; i <= 100; i++ {
		lines += fmt.Sprintf(`{"msg":"access","ms":%d.5,"upstream_ms":%d}`+"\n", i, i)
	}
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := readInside(path, int64(len(warm)))
	if err != nil {
		t.Fatal(err)
	}
	if in.Lines != 100 || in.OwnP50 != 0.5 || in.OwnP99 != 0.5 || in.HandlerP50 != 51.5 || in.HandlerP99 != 100.5 || in.UpstreamP99 != 100 {
		t.Fatalf("%+v", in)
	}
	if _, err := readInside(path, int64(len(lines))); err == nil {
		t.Fatal("no lines after the offset must be an error, not zeros")
	}
}
