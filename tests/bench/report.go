package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Report is one run of the suite.
type Report struct {
	Date         time.Time `json:"date"`
	Commit       string    `json:"commit"`
	Machine      string    `json:"machine"`
	Command      string    `json:"command"`
	Seconds      float64   `json:"seconds"`
	LoadAvgStart string    `json:"loadavg_start"`
	LoadAvgEnd   string    `json:"loadavg_end"`
	// MachineBusy is the share of all cores in use during the whole run, by every process.
	MachineBusy float64        `json:"machine_busy_share"`
	Targets     []Verdict      `json:"targets"`
	Gateway     *GatewayResult `json:"gateway,omitempty"`
	ColdStarts  []ColdStart    `json:"cold_starts,omitempty"`
	EndToEnd    []EndToEnd     `json:"end_to_end,omitempty"`
	GoBench     *GoBench       `json:"go_benchmarks,omitempty"`
}

// Verdict is one of issue 8's numbers against what this run measured.
type Verdict struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	Verdict  string `json:"verdict"`
}

const coldTarget = 50.0 // ms, median

// notesMarker starts the hand-written part of the report (the circumstances of a run, an
// analysis), which a new run keeps: everything from the marker on is carried over.
const notesMarker = "<!-- notes below are written by hand and kept by tests/bench across runs -->"

// defaultCommand is what `make bench` runs.
const defaultCommand = "go run ./tests/bench -out docs/benchmarks.md"

func verdicts(r *Report) []Verdict {
	var v []Verdict
	if g := r.Gateway; g != nil && g.Throughput != nil && g.Throughput.Ratio > 0 {
		x := g.Throughput.Ratio
		vd := Verdict{Target: "gateway full chain ≥ 80% of the bare reverse proxy's requests/s (wrk, saturation)", Measured: fmt.Sprintf("%.1f%%", 100*x), Met: x >= 0.80}
		vd.Verdict = "met"
		if !vd.Met {
			vd.Verdict = fmt.Sprintf("missed by %.1f points", 100*(0.80-x))
		}
		v = append(v, vd)
	}
	if g := r.Gateway; g != nil && g.Latency != nil {
		if x, ok := g.Latency.AddedP99["2000"]; ok {
			var gwP99, directP99, gwSuccess float64
			for _, s := range g.Latency.Summary {
				switch {
				case s.Rate == 2000 && s.Target == "gateway, full chain":
					gwP99, gwSuccess = s.P99ms, s.Success
				case s.Rate == 2000 && s.Target == "direct to backend":
					directP99 = s.P99ms
				}
			}
			// Two readings of "added": the median of each round's difference, and the
			// difference of the medians. Both must be under 1 ms, with every request answered;
			// a negative difference says the baseline itself was starved, not that the hop
			// is free.
			diff := gwP99 - directP99
			vd := Verdict{Target: "p99 added by the gateway < 1 ms at 2,000 requests/s (vegeta, fixed rate)",
				Measured: fmt.Sprintf("%.3f ms (median of the rounds' differences); gateway p99 %.3f ms vs direct %.3f ms (medians): %.3f ms; gateway success %.2f%% in its worst round", x, gwP99, directP99, diff, 100*gwSuccess),
				Met:      x < 1 && diff < 1 && gwSuccess == 1}
			worst := max(x, diff)
			switch {
			case vd.Met:
				vd.Verdict = "met"
			case gwSuccess < 1 && worst < 1:
				vd.Verdict = fmt.Sprintf("missed: %.2f%% of the gateway's requests failed in its worst round", 100*(1-gwSuccess))
			case gwSuccess < 1:
				vd.Verdict = fmt.Sprintf("missed by %.3f ms, and %.2f%% of the gateway's requests failed in its worst round", worst-1, 100*(1-gwSuccess))
			default:
				vd.Verdict = fmt.Sprintf("missed by %.3f ms", worst-1)
			}
			v = append(v, vd)
		}
	}
	if len(r.ColdStarts) > 0 {
		n, met, worst, worstName := 0, 0, 0.0, ""
		for _, c := range r.ColdStarts {
			if c.Process.N == 0 {
				continue
			}
			n++
			if c.Process.Median < coldTarget {
				met++
			}
			if c.Process.Median > worst {
				worst, worstName = c.Process.Median, c.Function
			}
		}
		if n > 0 {
			vd := Verdict{Target: fmt.Sprintf("cold start median < %.0f ms (process start → first 200, every function that starts locally)", coldTarget),
				Measured: fmt.Sprintf("%d of %d functions; slowest median %.1f ms (%s)", met, n, worst, worstName), Met: met == n}
			vd.Verdict = "met"
			if !vd.Met {
				vd.Verdict = fmt.Sprintf("missed by %d functions, the slowest by %.1f ms", n-met, worst-coldTarget)
			}
			v = append(v, vd)
		}
	}
	return v
}

func write(out string, r *Report) error {
	svgName := "cold-start.svg"
	var b strings.Builder
	fmt.Fprintf(&b, "# Platform benchmarks\n\nMeasured %s on %s, commit `%s`, in %.1f minutes.\n\n", r.Date.Format("2006-01-02 15:04 UTC"), r.Machine, r.Commit, r.Seconds/60)
	if r.Command == defaultCommand {
		fmt.Fprintf(&b, "Reproduce with `make bench`, which runs `%s`.\n\n", r.Command)
	} else {
		fmt.Fprintf(&b, "Reproduce with `%s` (`make bench` runs the full suite: `%s`).\n\n", r.Command, defaultCommand)
	}
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) at the start: %s; at the end: %s. Share of the machine's cores in use during the whole run, by every process (this suite included): %.0f%%. The load generators and the servers share these cores, so every comparison below is against a baseline measured in the same run, minutes apart at most.\n\n",
		r.LoadAvgStart, r.LoadAvgEnd, 100*r.MachineBusy)
	b.WriteString("Load generators: fixed rates come from [vegeta](https://github.com/tsenart/vegeta) used as a library, an open model (each request leaves on schedule whatever earlier answers do, so a slow answer cannot hold back the next one and the percentiles carry no coordinated omission); saturation throughput comes from `wrk` (closed loop: its latencies are what a saturating client sees).\n\n")
	if len(r.Targets) > 0 {
		b.WriteString("## Targets (issue 8)\n\n| target | measured | verdict |\n|---|---|---|\n")
		for _, t := range r.Targets {
			fmt.Fprintf(&b, "| %s | %s | **%s** |\n", t.Target, t.Measured, t.Verdict)
		}
		b.WriteString("\nNothing in the harness was tuned to pass: the rates, durations and configurations are the ones in the command above and in the gateway report's setup.\n")
	}
	if g := r.Gateway; g != nil {
		writeGateway(&b, g)
	}
	if len(r.ColdStarts) > 0 {
		writeColdStarts(&b, r.ColdStarts, svgName)
	}
	if len(r.EndToEnd) > 0 {
		writeEndToEnd(&b, r.EndToEnd)
	}
	if g := r.GoBench; g != nil {
		writeGoBench(&b, g)
	}
	if out == "" {
		_, err := io.WriteString(os.Stdout, b.String())
		return err
	}
	if old, err := os.ReadFile(out); err == nil {
		if i := strings.Index(string(old), notesMarker); i >= 0 {
			b.WriteString("\n" + string(old[i:]))
		}
	}
	if !strings.Contains(b.String(), notesMarker) {
		b.WriteString("\n" + notesMarker + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if len(r.ColdStarts) > 0 {
		if err := os.WriteFile(filepath.Join(filepath.Dir(out), svgName), []byte(coldStartSVG(r.ColdStarts, coldTarget)), 0o644); err != nil {
			return err
		}
	}
	j, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(strings.TrimSuffix(out, filepath.Ext(out))+".json", append(j, '\n'), 0o644)
}

func writeGateway(b *strings.Builder, g *GatewayResult) {
	fmt.Fprintf(b, "\n## Gateway against named baselines\n\nFrom `%s`; its full report, with every run, the setup of each server, the Redis kill and the JWKS flood, is [%s](%s). The same backend (a Go server answering a fixed 68-byte JSON body) behind each server; the gateway runs its full chain (API key, Redis rate limit that never trips, metrics, 1%% traced with OTLP export, JSON access log).\n",
		g.Command, filepath.Base(g.Report), filepath.Base(g.Report))
	if t := g.Throughput; t != nil {
		fmt.Fprintf(b, "\n### Saturation (wrk, median of %d rounds)\n\n`%s`\n\n", t.Rounds, t.Command)
		b.WriteString("| server | requests/s | vs bare proxy | p50 ms | p95 ms | p99 ms | p99.9 ms | server CPU ms per 1,000 requests | CPU vs bare proxy | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		var bareCPU float64
		for _, s := range t.Targets {
			if strings.HasPrefix(s.Name, "bare") {
				bareCPU = s.CPUPer1k
			}
		}
		for _, s := range t.Targets {
			if s.RPS == 0 {
				fmt.Fprintf(b, "| %s | skipped: %s | | | | | | | | |\n", s.Name, s.Skipped)
				continue
			}
			cpuRatio := ""
			if bareCPU > 0 {
				cpuRatio = fmt.Sprintf("%.2fx", s.CPUPer1k/bareCPU)
			}
			fmt.Fprintf(b, "| %s | %.0f | %.1f%% | %.2f | %.2f | %.2f | %.2f | %.1f | %s | %d |\n", s.Name, s.RPS, 100*s.Ratio, s.P50ms, s.P95ms, s.P99ms, s.P999ms, s.CPUPer1k, cpuRatio, s.Errors)
		}
		rr := make([]string, len(t.RoundRatios))
		for i, x := range t.RoundRatios {
			rr[i] = fmt.Sprintf("%.1f%%", 100*x)
		}
		fmt.Fprintf(b, "\nGateway over bare proxy per round: %s.\n", strings.Join(rr, ", "))
	}
	if l := g.Latency; l != nil && len(l.Summary) > 0 {
		b.WriteString("\n### Fixed rates (vegeta, open model, median of the rounds)\n\n")
		b.WriteString("| rate/s | path | success (worst round) | p50 ms | p95 ms | p99 ms | p99.9 ms | p99 added over direct, ms | p99 vs bare proxy | proxy CPU ms per 1,000 requests |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range l.Summary {
			cpu, vs, add := "", "", ""
			if s.CPUPer1k > 0 {
				cpu = fmt.Sprintf("%.1f", s.CPUPer1k)
			}
			if s.P99VsBare > 0 {
				vs = fmt.Sprintf("%.2fx", s.P99VsBare)
			}
			if s.Target != "direct to backend" {
				add = fmt.Sprintf("%.3f", s.AddedP99)
			}
			fmt.Fprintf(b, "| %d | %s | %.2f%% | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n", s.Rate, s.Target, 100*s.Success, s.P50ms, s.P95ms, s.P99ms, s.P999ms, add, vs, cpu)
		}
		b.WriteString("\nA rate above what a server sustains on this machine shows as a queue: latency grows for the whole run (open model), which is the honest answer at that rate.\n")
	}
	if k := g.RedisKill; k != nil {
		fmt.Fprintf(b, "\nRedis SIGKILLed for 10 s under %d/s on the fail-open route: %d 5xx in %d requests; the limiter was back on Redis %.0f ms after redis-server answered again.", k.Rate, k.Status5xx, k.Requests, k.RecoveredMs)
	}
	if j := g.JWKS; j != nil {
		fmt.Fprintf(b, " JWKS flood of unknown kids at %d/s: %d fetches (bound %d).", j.Rate, j.Fetches, j.Bound)
	}
	if g.RedisKill != nil || g.JWKS != nil {
		b.WriteString(" Details in the gateway report.\n")
	}
}

func writeColdStarts(b *strings.Builder, cs []ColdStart, svg string) {
	n := 0
	for _, c := range cs {
		n = max(n, c.Process.N)
	}
	fmt.Fprintf(b, "\n## Cold start per function (local platform, %d runs each)\n\n", n)
	b.WriteString("Every catalog entry, the gateway and the always-warm services included, run as a scale-to-zero function of `knative/local` with a real redis-server: a request to the activator finds no process, the activator starts the release binary (`-trimpath -ldflags='-s -w'`, CGO off) and polls `/health/liveness` every 2 ms. **Process start → first 200** is the activator's own timing of that; **first answer** is the client's, from sending the request to its 200. After each answer the harness SIGKILLs the process, so the next request is cold again. Idle RSS is VmRSS half a second after the first answer. `DATA_PROVIDER=synthetic`, `LOG_LEVEL=error`.\n\n")
	fmt.Fprintf(b, "![cold start distribution per function](%s)\n\n", svg)
	b.WriteString("| function | kind in a cluster | process start → first 200: median ms | p95 ms | min ms | max ms | first answer: median ms | p95 ms | binary MB | idle RSS MB | median < 50 ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range cs {
		if c.Error != "" {
			fmt.Fprintf(b, "| %s | %s | did not start locally: %s | | | | | | %.1f | | |\n", c.Function, c.Kind, strings.ReplaceAll(c.Error, "|", "\\|"), float64(c.BinaryBytes)/1e6)
			continue
		}
		verdict := "met"
		if c.Process.Median >= coldTarget {
			verdict = fmt.Sprintf("**missed** by %.1f ms", c.Process.Median-coldTarget)
		}
		fmt.Fprintf(b, "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n", c.Function, c.Kind, c.Process.Median, c.Process.P95, c.Process.Min, c.Process.Max,
			c.FirstAnswer.Median, c.FirstAnswer.P95, float64(c.BinaryBytes)/1e6, float64(c.IdleRSSKiB)/1024, verdict)
	}
}

func writeEndToEnd(b *strings.Builder, es []EndToEnd) {
	b.WriteString("\n## End to end through the gateway (local platform)\n\nThe whole platform from `knative/local` with a real redis-server, the real TSE daily files as the market (`DATA_PROVIDER=csv`), the gateway's development key, its rate limit raised out of the way (`RATE_LIMIT=100000`). **Warm**: vegeta at a fixed rate after a 2 s warm-up at that rate. **Cold**: one request at a time, each sent once the platform's reaper has scaled the function to zero (idle window 500 ms), each checked to have started exactly one process; the gateway and the always-warm ensemble stay up, as in a cluster. \"Cache hits\" is the share of 200 answers served from the function's own Redis cache.\n\n")
	b.WriteString("| request | function | state | requests | success | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | cache hits | statuses |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, e := range es {
		req := e.Method + " " + strings.SplitN(e.Path, "?", 2)[0]
		if e.Body != "" {
			req += " `" + e.Body + "`"
		}
		for _, x := range []struct {
			state string
			r     *Run
		}{{"warm", e.Warm}, {"cold", e.Cold}} {
			if x.r == nil {
				continue
			}
			state := x.state
			if x.r.Rate > 0 {
				state = fmt.Sprintf("warm, %d/s for %.0f s", x.r.Rate, x.r.Seconds)
			}
			fmt.Fprintf(b, "| %s | %s | %s | %d | %.2f%% | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %s |\n", req, e.Function, state, x.r.Requests, 100*x.r.Success,
				x.r.Latency.Median, x.r.Latency.P95, x.r.Latency.P99, x.r.P999, x.r.Latency.Max, 100*x.r.CacheHits, x.r.Status)
		}
	}
	for _, e := range es {
		if e.Cold != nil && e.Cold.Requests < 1000 {
			fmt.Fprintf(b, "\nWith %d cold requests, p95, p99 and p99.9 are nearest ranks among a handful of values (p99 and p99.9 are the slowest); they show the shape, not a tail.\n", e.Cold.Requests)
			break
		}
	}
}

func writeGoBench(b *strings.Builder, g *GoBench) {
	fmt.Fprintf(b, "\n## Ensemble inference and training (Go benchmarks)\n\n`%s`\n\n", g.Command)
	b.WriteString("`shared/ml` benchmarks use 10 symbols × 1000 synthetic daily rows × 30 features; `functions/ensemble/inference` runs the default ensemble trained on the ten real daily files through request validation. Median and range over the runs, computed by the harness:\n\n")
	b.WriteString("| package | benchmark | unit | median | min | max | runs |\n|---|---|---|---:|---:|---:|---:|\n")
	for _, r := range g.Results {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %d |\n", strings.TrimPrefix(r.Package, "github.com/day-trade/platform/"), r.Name, r.Unit, num(r.Median), num(r.Min), num(r.Max), len(r.Values))
	}
	switch {
	case g.Benchstat != "":
		fmt.Fprintf(b, "\nbenchstat (`go run %s`):\n\n```\n%s```\n", benchstatModule, g.Benchstat)
	case g.BenchErr != "":
		fmt.Fprintf(b, "\nbenchstat did not run (%s); the table above is the harness's own median and range.\n", g.BenchErr)
	default:
		b.WriteString("\nbenchstat was not asked for (`-benchstat \"\"`); the table above is the harness's own median and range.\n")
	}
}

// num prints a benchmark value with the precision it deserves.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.4g", v)
	}
}
