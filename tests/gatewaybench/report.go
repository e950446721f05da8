package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// notesMarker starts the hand-written part of the report (analysis, profile), which a new
// run keeps: everything from the marker to the end of the existing file is carried over.
const notesMarker = "<!-- notes below are written by hand and kept by gatewaybench across runs -->"

func write(out string, rep Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Gateway performance (issue 4)\n\nMeasured %s on %s, commit `%s`.\n\nReproduce with `%s` (this run took %.0f minutes).\n\n",
		rep.Date.Format("2006-01-02 15:04 UTC"), rep.Machine, rep.Commit, rep.Command, rep.Minutes)
	names := make([]string, 0, len(rep.Tools))
	for n := range rep.Tools {
		names = append(names, n)
	}
	slices.Sort(names)
	b.WriteString("Tools: ")
	for i, n := range names {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s `%s`", n, rep.Tools[n])
	}
	fmt.Fprintf(&b, ".\n\nLoad average (1, 5, 15 min) at the start: %s; at the end: %s.\n\n## Setup\n\n", rep.LoadAvg[0], rep.LoadAvg[1])
	for _, s := range rep.Setup {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	if t := rep.Throughput; t != nil {
		writeThroughput(&b, t)
	}
	if l := rep.Latency; l != nil {
		writeLatency(&b, l)
	}
	if k := rep.RedisKill; k != nil {
		writeRedisKill(&b, k)
	}
	if j := rep.JWKS; j != nil {
		writeJWKS(&b, j)
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
	j, _ := json.MarshalIndent(rep, "", "  ")
	return os.WriteFile(strings.TrimSuffix(out, filepath.Ext(out))+".json", append(j, '\n'), 0o644)
}

func writeThroughput(b *strings.Builder, t *Throughput) {
	fmt.Fprintf(b, "\n## Throughput at saturation (wrk, %d rounds)\n\n`%s`, after a warm-up run; each server alone, order rotated every round. Median over the rounds. wrk is a closed-loop generator (64 connections, each sends its next request when the previous answer arrives), so these percentiles are what a saturating client sees and carry coordinated omission; the fixed-rate section below does not.\n\n", t.Rounds, t.Command)
	b.WriteString("| server | requests/s | vs bare | p50 ms | p95 ms | p99 ms | p99.9 ms | server CPU ms per 1,000 requests | non-2xx + socket errors | CPU taken by other processes | runs (requests/s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range t.Targets {
		if len(r.Runs) == 0 {
			fmt.Fprintf(b, "| %s | skipped: %s | | | | | | | | | |\n", r.Name, r.Skipped)
			continue
		}
		runs := make([]string, len(r.Runs))
		for i, w := range r.Runs {
			runs[i] = fmt.Sprintf("%.0f", w.RPS)
		}
		fmt.Fprintf(b, "| %s | %.0f | %.1f%% | %.2f | %.2f | %.2f | %.2f | %.1f | %d | %.0f%% | %s |\n", r.Name, r.MedianRPS, 100*r.Ratio, r.P50ms, r.P95ms, r.P99ms, r.P999ms, r.CPUPer1k, r.Errors, 100*r.Background, strings.Join(runs, ", "))
	}
	rr := make([]string, len(t.RoundRatios))
	for i, x := range t.RoundRatios {
		rr[i] = fmt.Sprintf("%.1f%%", 100*x)
	}
	verdict := "**met**"
	if t.Ratio < 0.80 {
		verdict = fmt.Sprintf("**missed** by %.1f points", 100*(0.80-t.Ratio))
	}
	for _, r := range t.Targets {
		if tr := r.Tracing; tr != nil && tr.Sampled+tr.Unsampled > 0 {
			fmt.Fprintf(b, "\nTracing, as the backend saw it: %d of %d requests the gateway forwarded (warm-up included) carried a sampled traceparent (%.2f%%; the rest flag 00, none without one: %d), and the gateway sent %d OTLP exports (%d bytes).\n",
				tr.Sampled, tr.Sampled+tr.Unsampled+tr.NoTrace, 100*float64(tr.Sampled)/float64(tr.Sampled+tr.Unsampled+tr.NoTrace), tr.NoTrace, tr.OTLPExports, tr.OTLPBytes)
		}
	}
	fmt.Fprintf(b, "\nThe gateway with its full chain keeps **%.1f%%** of the bare proxy's requests/s (target ≥ 80%%: %s). Per round: %s.\n", 100*t.Ratio, verdict, strings.Join(rr, ", "))
}

func writeLatency(b *strings.Builder, l *Latency) {
	b.WriteString("\n## Latency at fixed rates (vegeta, open model)\n\nvegeta runs inside the harness process and sends on schedule whether or not earlier answers have come back (no coordinated omission). Each run after a warm-up at the same rate; in each round the backend alone, then every proxy in front of it, the order rotated; percentiles are exact (nearest rank over every answer). A rate above a server's capacity shows as a queue: latency grows for the whole run and the success column drops when answers pass the 10 s timeout.\n\n")
	b.WriteString("Medians over the rounds (\"added p99\" is the median of each round's p99 minus the direct run's p99 in that round):\n\n")
	b.WriteString("| rate/s | path | rounds | success (worst round) | p50 ms | p95 ms | p99 ms | p99.9 ms | added p99 ms | p99 vs bare proxy | proxy CPU ms per 1,000 requests |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
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
		fmt.Fprintf(b, "| %d | %s | %d | %.2f%% | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n", s.Rate, s.Target, s.Rounds, 100*s.Success, s.P50ms, s.P95ms, s.P99ms, s.P999ms, add, vs, cpu)
	}
	inside := false
	for _, s := range l.Summary {
		inside = inside || s.Inside != nil
	}
	if inside {
		b.WriteString("\nInside the gateway, from its own access log over the same runs (medians over the rounds): the handler's time (`ms`), the part of it spent waiting for the upstream's answer (`upstream_ms`), and the rest, the chain's own work (`ms - upstream_ms`: auth, limits, routing, identity token, proxying the answer). What the client sees beyond the handler's time is the extra hop itself: the kernel, the scheduler and net/http reading the request and writing the answer.\n\n")
		b.WriteString("| rate/s | path | handler p50 ms | handler p99 ms | upstream p99 ms | own p50 ms | own p99 ms | own p99.9 ms | client p99 minus handler p99 ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range l.Summary {
			if in := s.Inside; in != nil {
				fmt.Fprintf(b, "| %d | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", s.Rate, s.Target, in.HandlerP50, in.HandlerP99, in.UpstreamP99, in.OwnP50, in.OwnP99, in.OwnP999, s.P99ms-in.HandlerP99)
			}
		}
	}
	b.WriteString("\nEvery run (\"machine busy\" is the share of both cores in use during the run, by every process on the machine):\n\n")
	b.WriteString("| rate/s | round | path | requests | success | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | proxy CPU ms per 1,000 requests | machine busy | answers |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, f := range l.Runs {
		cpu := ""
		if f.CPUPer1k > 0 {
			cpu = fmt.Sprintf("%.1f", f.CPUPer1k)
		}
		busy := "n/a"
		if f.MachineBusy >= 0 {
			busy = fmt.Sprintf("%.0f%%", 100*f.MachineBusy)
		}
		answers := f.StatusMix
		if f.Errors != "" {
			answers += "; errors: " + f.Errors
		}
		fmt.Fprintf(b, "| %d | %d | %s | %d | %.2f%% | %.3f | %.3f | %.3f | %.3f | %.2f | %s | %s | %s |\n", f.Rate, f.Round, f.Target, f.Requests, 100*f.Success, f.P50ms, f.P95ms, f.P99ms, f.P999ms, f.MaxMs, cpu, busy, strings.ReplaceAll(answers, "|", "\\|"))
	}
	rates := make([]int, 0, len(l.AddedP99))
	for r := range l.AddedP99 {
		rates = append(rates, r)
	}
	slices.Sort(rates)
	b.WriteString("\n")
	for _, r := range rates {
		verdict := "no target at this rate"
		if r == 2000 {
			verdict = "**met**"
			if l.AddedP99[r] >= 1 {
				verdict = fmt.Sprintf("**missed** by %.3f ms", l.AddedP99[r]-1)
			}
		}
		rounds := make([]string, len(l.AddedP99Rounds[r]))
		for i, x := range l.AddedP99Rounds[r] {
			rounds[i] = fmt.Sprintf("%.3f", x)
		}
		bare := "" // -targets may leave the bare proxy out
		if add, ok := l.BareAddedP99[r]; ok {
			bare = fmt.Sprintf(" A bare ReverseProxy hop adds %.3f ms.", add)
		}
		fmt.Fprintf(b, "- At %d/s the gateway adds **%.3f ms** at p99 over calling the backend directly, median of the rounds (%s ms) (target < 1 ms at 2,000/s: %s).%s\n", r, l.AddedP99[r], strings.Join(rounds, ", "), verdict, bare)
	}
}

func writeRedisKill(b *strings.Builder, k *RedisKill) {
	fmt.Fprintf(b, "\n## Redis killed under load\n\nvegeta at %d/s on %s; redis-server SIGKILLed, restarted %.1f s later (same port, same append-only file).\n\n", k.Rate, k.Route, k.RedisDownSeconds)
	b.WriteString("| measure | value |\n|---|---|\n")
	fmt.Fprintf(b, "| requests (whole run) | %d (%s) |\n", k.Requests, k.StatusMix)
	fmt.Fprintf(b, "| requests while Redis was dead | %d (%s) |\n", k.OutageRequests, k.OutageStatusMix)
	fmt.Fprintf(b, "| 5xx answers | **%d** %s |\n", k.Status5xx, k.Problems5xx)
	fmt.Fprintf(b, "| p99 / max latency while Redis was dead | %.2f / %.2f ms |\n", k.OutageP99ms, k.MaxOutageLatencyM)
	fmt.Fprintf(b, "| requests admitted by the local fallback limiter (`decision=degraded_allow`) | %.0f |\n", k.DegradedAllowed)
	fmt.Fprintf(b, "| limiter logged \"degraded\" after the kill | %.0f ms |\n", k.DegradedAfterMs)
	fmt.Fprintf(b, "| limiter logged \"recovered\" after redis-server answered PING again | **%.0f ms** |\n", k.RecoveredAfterMs)
	fmt.Fprintf(b, "| `gateway_ratelimit_degraded` read 0 on /metrics after that (polled every 20 ms) | %.0f ms |\n", k.GaugeClearedMs)
	zero, back := "**met**", "**met**"
	if !k.ZeroLimiter5xx {
		zero = "**missed**"
	}
	if !k.RecoveredUnder1s {
		back = "**missed**"
	}
	fmt.Fprintf(b, "\nZero 5xx on the fail-open route: %s. Back on Redis within 1 s: %s.\n", zero, back)
}

func writeJWKS(b *strings.Builder, j *JWKSFlood) {
	fmt.Fprintf(b, "\n## JWKS under a flood of unknown kids\n\nvegeta at %d/s for %.1f s; every request carries a fresh, correctly signed EdDSA token whose `kid` is random (so only a JWKS lookup can refuse it); the gateway runs with `JWKS_COOLDOWN=%gs`.\n\n", j.Rate, j.Seconds, j.CooldownS)
	b.WriteString("| measure | value |\n|---|---|\n")
	fmt.Fprintf(b, "| requests | %d (%s) |\n", j.Requests, j.StatusMix)
	fmt.Fprintf(b, "| JWKS fetches during the flood | **%d** (bound: one per cooldown = %d) |\n", j.Fetches, j.Bound)
	offs := make([]string, len(j.FetchOffset))
	for i, o := range j.FetchOffset {
		offs[i] = fmt.Sprintf("%.2f", o)
	}
	fmt.Fprintf(b, "| fetch times (s after the flood began) | %s |\n", strings.Join(offs, ", "))
	if j.MinGapS >= 0 {
		fmt.Fprintf(b, "| least gap between two fetches | %.2f s |\n", j.MinGapS)
	}
	fmt.Fprintf(b, "| p99 latency of the refusals | %.2f ms |\n", j.P99ms)
	verdict := "**met**"
	if !j.Met {
		verdict = "**missed**"
	}
	fmt.Fprintf(b, "\nAt most one JWKS fetch per cooldown, every token refused with 401: %s.\n", verdict)
}
