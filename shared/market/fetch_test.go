package market

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"99999999":                      24 * time.Hour,
		"Thu, 01 Feb 2024 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Jan 2024 23:00:00 GMT": 0, // already past
	}
	for in, want := range tests {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	t.Parallel()
	f := newFetcher("test", Options{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}.withDefaults())
	tests := []struct {
		attempt int
		nominal time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second}, {40, time.Second}, {70, time.Second}}
	for _, tc := range tests {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := f.backoff(tc.attempt)
			if d < tc.nominal/2 || d > tc.nominal {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.nominal/2, tc.nominal)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) has no jitter: always %v", tc.attempt, seen)
		}
	}
}
