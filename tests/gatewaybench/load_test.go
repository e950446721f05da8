package main

import "testing"

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
