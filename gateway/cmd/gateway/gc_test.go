package main

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestApplyGCDefaults(t *testing.T) {
	prevPercent, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevPercent); debug.SetMemoryLimit(prevLimit) })
	limit512 := func() (int64, bool) { return 512 << 20, true }
	noLimit := func() (int64, bool) { return 0, false }

	t.Run("unset: the gateway's GOGC and 90% of the container limit", func(t *testing.T) {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		s := applyGCDefaults("", "", limit512)
		if got := debug.SetGCPercent(-1); got != defaultGOGC || s.Percent != defaultGOGC || s.PercentFromEnv {
			t.Errorf("GOGC %d (reported %+v), want %d", got, s, defaultGOGC)
		}
		debug.SetGCPercent(defaultGOGC)
		lim := float64(512 << 20)
		want := int64(lim * memLimitShare)
		if got := debug.SetMemoryLimit(-1); got != want || s.MemoryLimit != want || s.MemoryLimitFrom != "cgroup" {
			t.Errorf("memory limit %d (reported %+v), want %d from the cgroup", got, s, want)
		}
	})
	t.Run("set in the environment: left as the runtime read them", func(t *testing.T) {
		debug.SetGCPercent(150)        // what the runtime would have parsed from GOGC=150
		debug.SetMemoryLimit(64 << 20) // and from GOMEMLIMIT=64MiB
		s := applyGCDefaults("150", "64MiB", limit512)
		if got := debug.SetGCPercent(-1); got != 150 || s.Percent != 150 || !s.PercentFromEnv {
			t.Errorf("GOGC %d (reported %+v), want the environment's 150", got, s)
		}
		debug.SetGCPercent(150)
		if got := debug.SetMemoryLimit(-1); got != 64<<20 || s.MemoryLimitFrom != "env" {
			t.Errorf("memory limit %d (reported %+v), want the environment's", got, s)
		}
	})
	t.Run("no container limit: no soft limit", func(t *testing.T) {
		debug.SetMemoryLimit(math.MaxInt64)
		s := applyGCDefaults("", "", noLimit)
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 || s.MemoryLimitFrom != "none" {
			t.Errorf("memory limit %d (reported %+v), want none", got, s)
		}
	})
}
