package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/day-trade/platform/functions"
)

// selectFunctions is the catalog, or the named part of it.
func selectFunctions(names string) ([]functions.Function, error) {
	all := functions.Catalog()
	if names == "" {
		return all, nil
	}
	var fs []functions.Function
	for _, n := range strings.Split(names, ",") {
		f, ok := functions.Lookup(strings.TrimSpace(n))
		if !ok {
			return nil, fmt.Errorf("no function %q in the catalog", n)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// e2eFunctions adds to fns what the end-to-end section needs when it runs.
func e2eFunctions(fns []functions.Function, o options) []functions.Function {
	if !o.want("e2e") {
		return fns
	}
	out := slices.Clone(fns)
	for _, f := range e2eCatalog(o) {
		if !slices.ContainsFunc(out, func(g functions.Function) bool { return g.Name == f.Name }) {
			out = append(out, f)
		}
	}
	return out
}

// buildFunctions builds the release binaries (as ko and the Lambda zips build them) into dir.
func buildFunctions(ctx context.Context, moduleDir, dir string, fns []functions.Function) error {
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", dir + "/"}
	for _, f := range fns {
		args = append(args, f.ImportPath())
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stderr = moduleDir, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

func gitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s, %s", cpu, runtime.NumCPU(), kernel, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func numCPU() int { return runtime.NumCPU() }

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// machineBusy is the CPU time all cores spent not idle since boot (/proc/stat: user, nice,
// system, irq, softirq, steal), to say how busy the machine was while we measured.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// rssKiB is VmRSS of pid from /proc/<pid>/status, 0 if unknown.
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kib
		}
	}
	return 0
}

// Distribution summarises a sample in milliseconds.
type Distribution struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	P95    float64   `json:"p95"`
	P99    float64   `json:"p99,omitempty"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	All    []float64 `json:"all,omitempty"`
}

// summarise is nearest-rank quantiles of xs; keep stores the sample itself.
func summarise(xs []float64, keep bool) Distribution {
	if len(xs) == 0 {
		return Distribution{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	d := Distribution{N: len(s), Median: quantile(s, 0.5), P95: quantile(s, 0.95), P99: quantile(s, 0.99), Min: s[0], Max: s[len(s)-1]}
	if keep {
		d.All = xs
	}
	return d
}

// quantile is the nearest-rank quantile of sorted (the median of an even sample is the
// lower middle value).
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
