package main

import (
	"math"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// The gateway's garbage collector settings, used when the environment leaves them unset.
//
// The gateway's live heap is small (about 5 MB) and it allocates per request, so at Go's
// default GOGC=100 it collects every ~10 MB of allocation: 5 to 7 times a second at 2,000
// requests/s (GODEBUG=gctrace=1 in tests/gatewaybench), each cycle taking one of the two
// cores for several milliseconds, and the requests that meet a cycle are the slow end of the
// latency distribution. GOGC=400 collects about 4 times less often for some 20 MB more heap.
// GOMEMLIMIT, derived from the container's memory limit, keeps that extra headroom from ever
// pushing the process into an OOM kill: near the limit the collector runs as often as it must.
const (
	defaultGOGC = 400
	// memLimitShare of the container's memory limit is the soft limit; the rest is for what the
	// Go heap does not count (stacks, buffers in the kernel's accounting, binary).
	memLimitShare = 0.9
)

// gcSettings is what applyGCDefaults decided, for the start-up log line.
type gcSettings struct {
	Percent         int
	PercentFromEnv  bool
	MemoryLimit     int64  // 0: none
	MemoryLimitFrom string // "env", "cgroup" or "none"
}

// applyGCDefaults sets GOGC to defaultGOGC unless gogc (the GOGC variable) is set, and the
// soft memory limit to memLimitShare of the container's limit unless memLimit (GOMEMLIMIT)
// is set or there is no limit; the runtime has already applied whatever the variables say.
func applyGCDefaults(gogc, memLimit string, containerLimit func() (int64, bool)) gcSettings {
	var s gcSettings
	if gogc == "" {
		debug.SetGCPercent(defaultGOGC)
		s.Percent = defaultGOGC
	} else {
		s.PercentFromEnv = true
		s.Percent = debug.SetGCPercent(-1) // read back what the runtime parsed
		debug.SetGCPercent(s.Percent)
	}
	switch lim, ok := containerLimit(); {
	case memLimit != "":
		s.MemoryLimit, s.MemoryLimitFrom = debug.SetMemoryLimit(-1), "env"
	case ok:
		s.MemoryLimit, s.MemoryLimitFrom = int64(float64(lim)*memLimitShare), "cgroup"
		debug.SetMemoryLimit(s.MemoryLimit)
	default:
		s.MemoryLimitFrom = "none"
	}
	return s
}

// cgroupMemoryLimit is the container's memory limit as automemlimit reads it (cgroup v2 or
// v1, found from /proc/self/mountinfo and /proc/self/cgroup, the tightest limit up the
// hierarchy); no cgroup, no limit, or v1's "unlimited" sentinel report false.
func cgroupMemoryLimit() (int64, bool) {
	n, err := memlimit.FromCgroup()
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}
