package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/auth"
)

// ColdStart is one function's starts under the local platform.
type ColdStart struct {
	Function    string `json:"function"`
	Kind        string `json:"kind"`
	BinaryBytes int64  `json:"binary_bytes"`
	IdleRSSKiB  int64  `json:"idle_rss_kib"`
	// Process is process start to the first 200 from /health/liveness, as the platform's
	// activator times it (it polls every 2 ms for the first 100 ms).
	Process Distribution `json:"process_start_to_first_200_ms"`
	// FirstAnswer is the client's side: the request that found no process sent to the
	// activator, to its 200 (fork and exec, the wait until live, the proxied request).
	FirstAnswer Distribution `json:"request_to_first_answer_ms"`
	// Error says why the function could not start locally.
	Error string `json:"error,omitempty"`
}

const namespace = "day-trade"

// coldCatalog is the catalog with every entry made a scale-to-zero function: the activator
// starts each only when asked, so exactly one process starts while it is timed, whatever its
// kind in a cluster (the gateway and the always-warm services included).
func coldCatalog(fns []functions.Function) []functions.Function {
	out := make([]functions.Function, len(fns))
	for i, f := range fns {
		f.Kind = functions.KindFunction
		f.Scaling.MinScale = 0
		f.Scaling.IdleWindow = time.Hour // stopped by the harness, never by the reaper
		out[i] = f
	}
	return out
}

func measureColdStarts(ctx context.Context, o options, bin string, fns []functions.Function) ([]ColdStart, error) {
	redisPath, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	// The gateway is a plain function here, so it does not get the platform's signing key
	// through the wiring; it gets one of its own.
	key, _ := auth.GenerateInternalKey()
	p, err := local.Start(ctx, local.Options{
		Functions: coldCatalog(fns), Dir: o.moduleDir, BinDir: bin, SkipBuild: true, RedisServerPath: redisPath,
		StopTimeout: 5 * time.Second,
		Env:         append(os.Environ(), "LOG_LEVEL=error", "DATA_PROVIDER=synthetic", "INTERNAL_TOKEN_KEY="+key),
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Output:      io.Discard,
	})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	var out []ColdStart
	for _, f := range fns {
		cs := ColdStart{Function: f.Name, Kind: string(f.Kind)}
		if fi, err := os.Stat(filepath.Join(bin, path.Base(f.ImportPath()))); err == nil {
			cs.BinaryBytes = fi.Size()
		}
		proc, first, rss, err := coldStarts(ctx, p, client, f, o.coldRuns)
		if err != nil {
			cs.Error = err.Error()
			o.logf("  %s: %v", f.Name, err)
		} else {
			cs.Process, cs.FirstAnswer, cs.IdleRSSKiB = summarise(proc, true), summarise(first, true), rss
			o.logf("  %s: median %.1f ms, p95 %.1f ms, idle RSS %.1f MB", f.Name, cs.Process.Median, cs.Process.P95, float64(rss)/1024)
		}
		out = append(out, cs)
	}
	return out, nil
}

// coldStarts starts f runs times through the activator, killing it after each answer, and
// returns the platform's and the client's timings and the idle RSS after the first start.
func coldStarts(ctx context.Context, p *local.Platform, client *http.Client, f functions.Function, runs int) (proc, first []float64, rss int64, err error) {
	host := f.Host(namespace)
	for attempts := 0; len(proc) < runs; attempts++ {
		if attempts > 2*runs+5 {
			return nil, nil, 0, fmt.Errorf("only %d of %d starts were ours (something else kept starting it)", len(proc), runs)
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, err
		}
		if p.Running(f.Name) {
			_ = p.Kill(f.Name)
		}
		n0 := len(p.ColdStarts(f.Name))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ActivatorURL()+"/health/liveness", nil)
		req.Host = host
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, 0, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		took := time.Since(t0)
		if resp.StatusCode != http.StatusOK {
			return nil, nil, 0, fmt.Errorf("cannot start locally: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		cs := p.ColdStarts(f.Name)
		if len(cs) != n0+1 {
			continue // it was started by something else (an event) or not by this request
		}
		proc = append(proc, ms(cs[len(cs)-1]))
		first = append(first, ms(took))
		if len(proc) == 1 {
			// Idle RSS: the instance that has just answered, left alone for a moment.
			time.Sleep(500 * time.Millisecond)
			rss = rssKiB(p.Pid(f.Name))
		}
		_ = p.Kill(f.Name)
	}
	return proc, first, rss, nil
}
