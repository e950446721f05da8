package market

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// jst builds an instant in JST.
func jst(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, JST)
}

// clock returns a fixed clock.
func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// mustFixture reads testdata/name.
func mustFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sleeper is a fake Options.Sleep: it records the waits and returns at once, or runs onSleep.
type sleeper struct {
	mu      sync.Mutex
	waits   []time.Duration
	onSleep func(ctx context.Context) error
}

func (s *sleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	if s.onSleep != nil {
		return s.onSleep(ctx)
	}
	return ctx.Err()
}

func (s *sleeper) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// checkBars asserts what every provider promises: oldest first with distinct times in UTC,
// positive prices with low <= open, close <= high, and non-negative volume.
func checkBars(tb testing.TB, bars []Bar) {
	tb.Helper()
	for i, b := range bars {
		if b.Time.Location() != time.UTC {
			tb.Fatalf("bar %d time %v is not UTC", i, b.Time)
		}
		if i > 0 && !bars[i-1].Time.Before(b.Time) {
			tb.Fatalf("bar %d at %v does not follow bar %d at %v", i, b.Time, i-1, bars[i-1].Time)
		}
		for _, p := range []float64{b.Open, b.High, b.Low, b.Close, b.AdjClose} {
			if !(p > 0) || math.IsInf(p, 0) {
				tb.Fatalf("bar %d has a non-positive price: %+v", i, b)
			}
		}
		if b.Low > b.Open || b.Low > b.Close || b.High < b.Open || b.High < b.Close {
			tb.Fatalf("bar %d is inconsistent: %+v", i, b)
		}
		if b.Volume < 0 {
			tb.Fatalf("bar %d has negative volume: %+v", i, b)
		}
	}
}
