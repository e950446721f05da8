package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is one run of the harness.
type Report struct {
	Date      time.Time         `json:"date"`
	Commit    string            `json:"commit"`
	Machine   string            `json:"machine"`
	Command   string            `json:"command"`
	Smoke     bool              `json:"smoke"`
	Note      string            `json:"note,omitempty"`
	Tools     map[string]string `json:"tools"`
	LoadAvg   [2]string         `json:"loadavg_start_end"`
	Rows      []Row             `json:"summary"`
	Errors    []string          `json:"scenario_errors,omitempty"`
	Soak      *Soak             `json:"soak,omitempty"`
	RedisKill []*RedisKill      `json:"redis_kill,omitempty"`
	SlowRedis *SlowRedis        `json:"slow_redis,omitempty"`
	Breaker   *Breaker          `json:"breaker,omitempty"`
	Flaky     *Flaky            `json:"flaky,omitempty"`
	Hang      *Hang             `json:"hang,omitempty"`
	MidJob    *MidJob           `json:"mid_job,omitempty"`
}

// Row is one line of the summary table.
type Row struct {
	Scenario string `json:"scenario"`
	Load     string `json:"load"`
	Fault    string `json:"fault"`
	Duration string `json:"duration"`
	Requests string `json:"requests"`
	Errors   string `json:"errors"`
	Effects  string `json:"lost_or_duplicated"`
	Recovery string `json:"recovery"`
	Verdict  string `json:"verdict"`
	// Met is whether the scenario's targets held (the verdict's first word).
	Met bool `json:"met"`
}

func verdict(met bool, text string) (string, bool) {
	if met {
		return "**met**: " + text, true
	}
	return "**missed**: " + text, false
}

func rows(rep *Report, o options) []Row {
	var out []Row
	add := func(r Row, met bool, v string) {
		r.Verdict, r.Met = verdict(met, v)
		out = append(out, r)
	}
	if s := rep.Soak; s != nil {
		kills, rk := 0, 0
		for _, f := range s.Faults {
			if strings.HasPrefix(f.Kind, "SIGKILL execution-trade") {
				kills++
			} else {
				rk++
			}
		}
		bad := map[string]int{}
		for k, v := range s.AttemptStatus {
			if k != "201" {
				bad[k] = v
			}
		}
		add(Row{
			Scenario: "1. soak: paper trades with client retries",
			Load:     fmt.Sprintf("%d trades arriving at %d/s over %d tenants; each client retries with the same Idempotency-Key (up to %d attempts)", s.Trades, s.Rate, s.Tenants, o.maxAttempts),
			Fault:    fmt.Sprintf("%d× SIGKILL execution-trade (%d client requests in flight at those moments), %d× SIGKILL redis-server for 1–3 s", kills, s.InFlightAtKillsSum, rk),
			Duration: fmt.Sprintf("%.0f s", s.Seconds),
			Requests: fmt.Sprintf("%d HTTP attempts for %d trades (max %d for one)", s.Attempts, s.Trades, s.MaxAttempts),
			Errors:   mapString(bad) + " (all retried)",
			Effects: fmt.Sprintf("acknowledged-but-missing **%d**, duplicated **%d**; %d acknowledged (%d by a replay), %d placed but never acknowledged, %d gave up, ledger orders %d, orders from no request %d, projection≠rebuild %d",
				s.AckedMissing, s.Duplicated, s.Acked, s.AckedReplayed, s.PlacedUnacked, s.GaveUp, s.LedgerOrders, s.Foreign, s.RebuildMismatches),
			Recovery: fmt.Sprintf("trade latency with retries p50 %.0f ms, p99 %.0f ms; execution-trade cold starts %d", s.TradeLatencyP50ms, s.TradeLatencyP99ms, s.ExecColdStarts),
		}, s.AckedMissing == 0 && s.Duplicated == 0 && s.WrongOrderID == 0 && s.Foreign == 0 && s.RefusedButPlaced == 0 && s.GaveUp == 0 && s.Acked == s.Trades,
			"0 lost, 0 duplicated, every trade acknowledged")
	}
	for _, k := range rep.RedisKill {
		d := k.Data[2]
		add(Row{
			Scenario: fmt.Sprintf("2. Redis killed under load (%d/s)", k.TargetRate),
			Load:     fmt.Sprintf("GET /api/v1/data/stocks/{symbol} (fail-open) at a target of %d/s, sent %.0f/s; POST /api/v1/execution/trade (fail-closed) at %d/s, one attempt each", k.TargetRate, k.Data[0].SentRate, k.TradeRate),
			Fault:    fmt.Sprintf("SIGKILL redis-server, restarted %.1f s later (same port, AOF)", k.DownS),
			Duration: fmt.Sprintf("%.0f s", k.Data[0].Seconds),
			Requests: fmt.Sprintf("%d data + %d trades", k.Data[0].Requests, k.TradesAll.Requests),
			Errors: fmt.Sprintf("data while Redis was dead: %s (%s); trades while dead: %s (%s)",
				d.statusString(), d.causeString(), mapString(k.TradesOutage.ByStatus), mapString(k.TradesOutage.Causes)),
			Effects: fmt.Sprintf("limiter 5xx on the fail-open route **%d**; trades placed after the limiter's 503 **%d** (%d of %d such 503s carried Retry-After); acknowledged-but-missing %d, duplicated %d",
				k.Limiter5xx, k.TradesOutage.PlacedAfterLimiter503, k.TradesOutage.FailClosedRetry, k.TradesOutage.FailClosed, k.TradesAll.AckedMissing, k.TradesAll.Duplicated),
			Recovery: fmt.Sprintf("data: first 2xx %.0f ms, last non-2xx %.0f ms after Redis answered PING; trades: first 201 %.0f ms after", k.DataFirstOKms, k.DataLastBadms, k.TradeFirstOKms),
		}, k.Limiter5xx == 0 && k.TradesOutage.PlacedAfterLimiter503 == 0 && k.TradesAll.AckedMissing == 0 && k.TradesAll.Duplicated == 0 && k.TradesOutage.FailClosed == k.TradesOutage.FailClosedRetry,
			"0 limiter 5xx on the fail-open route; fail-closed 503s carry Retry-After and place nothing")
	}
	if s := rep.SlowRedis; s != nil {
		b, sl, af := s.Data[0], s.Data[1], s.Data[2]
		add(Row{
			Scenario: "3. Redis slowed by 500 ms",
			Load:     fmt.Sprintf("GET data route at %d/s (sent %.0f/s) + trades at %d/s", s.Rate, sl.SentRate, s.TradeRate),
			Fault:    fmt.Sprintf("Toxiproxy latency toxic +%d ms on every Redis reply for %.1f s", s.LatencyMs, sl.Seconds),
			Duration: fmt.Sprintf("%.0f s", b.Seconds+sl.Seconds+af.Seconds),
			Requests: fmt.Sprintf("%d data + %d trades", b.Requests+sl.Requests+af.Requests, s.TradesAll.Requests),
			Errors: fmt.Sprintf("data while slow: %s (%s), p50 %.0f ms / p99 %.0f ms vs baseline %.1f / %.1f ms; trades while slow: %s",
				sl.statusString(), sl.causeString(), sl.P50ms, sl.P99ms, b.P50ms, b.P99ms, mapString(s.TradesSlow.ByStatus)),
			Effects:  fmt.Sprintf("trades acknowledged-but-missing %d, duplicated %d", s.TradesAll.AckedMissing, s.TradesAll.Duplicated),
			Recovery: slowRecovery(s, af),
		}, s.TradesAll.AckedMissing == 0 && s.TradesAll.Duplicated == 0, "no trade lost or doubled (latency is reported, no target)")
	}
	if b := rep.Breaker; b != nil {
		f := b.Phases[1]
		add(Row{
			Scenario: "4. function answers 100% 503",
			Load:     fmt.Sprintf("GET /api/v1/ml/models at %d/s (sent %.0f/s)", b.Rate, f.SentRate),
			Fault:    fmt.Sprintf("faultfn in place of ml-models answers 503 to everything for %.1f s, then 200", f.Seconds),
			Duration: fmt.Sprintf("%.0f s", b.Phases[0].Seconds+f.Seconds+b.Phases[2].Seconds),
			Requests: fmt.Sprintf("%d (%d while failing; %d upstream attempts reached the function while failing)", b.Phases[0].Requests+f.Requests+b.Phases[2].Requests, f.Requests, b.UpstreamAttempts),
			Errors:   fmt.Sprintf("while failing: %s (%s)", f.statusString(), f.causeString()),
			Effects:  "none (idempotent reads)",
			Recovery: fmt.Sprintf("breaker opened %.0f ms after the failures began, half-open %d× while failing; after healing: first 2xx %.0f ms, breaker closed %.0f ms, last non-2xx %.0f ms", b.OpenedAfterMs, b.HalfOpens, b.FirstOKms, b.ClosedAfterMs, b.LastBadms),
		}, b.OpenedAfterMs >= 0 && b.ClosedAfterMs >= 0 && b.LastBadms < 5000, fmt.Sprintf("recovery < 5 s after the upstream heals (last non-2xx at %.2f s)", b.LastBadms/1000))
	}
	if f := rep.Flaky; f != nil {
		add(Row{
			Scenario: "5. 50% upstream failures",
			Load:     fmt.Sprintf("GET /api/v1/ml/models at %d/s (sent %.0f/s)", f.Rate, f.Client.SentRate),
			Fault:    "faultfn answers 503 to every second request it receives",
			Duration: fmt.Sprintf("%.0f s", f.Seconds),
			Requests: fmt.Sprintf("%d client requests, %d upstream attempts (%d of them 503)", f.Client.Requests, f.UpstreamAttempts, f.Upstream503),
			Errors:   fmt.Sprintf("%s (%s)", f.Client.statusString(), f.Client.causeString()),
			Effects:  "none (idempotent reads)",
			Recovery: fmt.Sprintf("amplification %.3f attempts per request; budget bound %.3f; breaker transitions %s", f.Amplification, f.BudgetBound, transitions(f.Transitions)),
		}, f.Amplification <= f.BudgetBound, fmt.Sprintf("amplification %.3f ≤ %.3f", f.Amplification, f.BudgetBound))
	}
	if h := rep.Hang; h != nil {
		hg, ob, of := h.Hanging[1], h.Other[0], h.Other[1]
		add(Row{
			Scenario: "6. function hangs",
			Load:     fmt.Sprintf("GET /api/v1/ml/models at %d/s and GET data route at %d/s, together", h.HangRate, h.OtherRate),
			Fault:    fmt.Sprintf("faultfn in place of ml-models holds every request for %.1f s (route timeout %s via GATEWAY_ROUTES_FILE)", hg.Seconds, h.RouteTimeout),
			Duration: fmt.Sprintf("%.0f s", h.Hanging[0].Seconds+hg.Seconds+h.Hanging[2].Seconds),
			Requests: fmt.Sprintf("%d hanging route + %d other route", h.Hanging[0].Requests+hg.Requests+h.Hanging[2].Requests, ob.Requests+of.Requests),
			Errors: fmt.Sprintf("hanging route: %s (%s); other route while it hung: %s; at most %d requests held by the function (bulkhead %d)",
				hg.statusString(), hg.causeString(), of.statusString(), h.MaxInFlight, h.BulkheadLimit),
			Effects:  "none (idempotent reads)",
			Recovery: fmt.Sprintf("other route p99 %.2f ms vs baseline %.2f ms (×%.2f), p50 %.2f vs %.2f ms; hanging route after healing: first 2xx %.0f ms, last non-2xx %.0f ms", of.P99ms, ob.P99ms, h.P99Ratio, of.P50ms, ob.P50ms, h.FirstOKms, h.LastBadms),
		}, of.OK == of.Requests && h.P99Ratio <= 2, "other route: no errors and p99 within 2× its baseline of the same run")
	}
	if m := rep.MidJob; m != nil {
		add(Row{
			Scenario: "7. worker killed mid-job",
			Load:     fmt.Sprintf("%d batch fetches of %d symbols (POST /api/v1/data/batch-fetch → Broker → data-batch-worker)", m.Jobs, m.Symbols),
			Fault:    fmt.Sprintf("SIGKILL data-batch-worker at a random point of each job (%d killed mid-job)", m.KilledMid),
			Duration: "job seconds: " + strings.Join(m.JobSeconds, ", "),
			Requests: fmt.Sprintf("%d jobs", m.Jobs),
			Errors:   fmt.Sprintf("%d of %d jobs succeeded %s", m.Succeeded, m.Jobs, strings.Join(m.Failures, "; ")),
			Effects:  fmt.Sprintf("symbols lost **%d**, written twice **%d**", m.Lost, m.Doubled),
			Recovery: fmt.Sprintf("progress resumed %s ms after the kill (event lease %.0f s); worker cold starts %d", strings.Join(m.ResumeMs, ", "), m.EventLeaseS, m.ColdStarts),
		}, m.Succeeded == m.Jobs && m.Lost == 0 && m.Doubled == 0 && m.KilledMid > 0, "every job completes, nothing lost or doubled")
	}
	return out
}

func transitions(ts []Transition) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s@%.1fs", t.State, t.AtS)
	}
	if len(parts) > 12 {
		parts = append(parts[:12], fmt.Sprintf("… (%d in all)", len(ts)))
	}
	return strings.Join(parts, " → ")
}

func mapString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// notesMarker starts the hand-written part of the report, which a new run keeps.
const notesMarker = "<!-- notes below are written by hand and kept by tests/chaos across runs -->"

func write(out string, rep *Report) error {
	var b strings.Builder
	mode := ""
	if rep.Smoke {
		mode = " (smoke mode: tiny counts, not the report's numbers)"
	}
	fmt.Fprintf(&b, "# Reliability under faults (issue 8)%s\n\nMeasured %s on %s, commit `%s`.\n\nReproduce with `make chaos` (`%s`).\n\n",
		mode, rep.Date.Format("2006-01-02 15:04 UTC"), rep.Machine, rep.Commit, rep.Command)
	fmt.Fprintf(&b, "Load average (1, 5, 15 min) at the start: %s; at the end: %s.", rep.LoadAvg[0], rep.LoadAvg[1])
	if rep.Note != "" {
		fmt.Fprintf(&b, " %s", rep.Note)
	}
	names := make([]string, 0, len(rep.Tools))
	for n := range rep.Tools {
		names = append(names, n)
	}
	slices.Sort(names)
	b.WriteString("\n\nTools: ")
	for i, n := range names {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s `%s`", n, rep.Tools[n])
	}
	b.WriteString(".\n\n## Setup\n\n")
	for _, s := range setup {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	b.WriteString("\n## Summary\n\nOne row per scenario. \"Sent\" rates are what the load generator achieved (requests ÷ time between the first and last send).\n\n")
	b.WriteString("| scenario | load | fault | duration | requests | errors (status, and who answered) | lost or duplicated effects | recovery | target |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, cell(r.Load), cell(r.Fault), r.Duration, cell(r.Requests), cell(r.Errors), cell(r.Effects), cell(r.Recovery), cell(r.Verdict))
	}
	if len(rep.Errors) > 0 {
		b.WriteString("\n**Scenarios that did not complete:**\n\n")
		for _, e := range rep.Errors {
			fmt.Fprintf(&b, "- `%s`\n", cell(e))
		}
	}
	writeDetails(&b, rep)
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

var setup = []string{
	"Every scenario starts its own local platform (`knative/local`: the gateway binary, the activator, functions started on demand as processes, the Broker on a Redis Stream) on its own `redis-server` (appendonly yes, appendfsync everysec: a SIGKILL of the process loses nothing the kernel has; a machine crash could lose the last second, which this harness does not test). The platform's process table is the catalog entries these scenarios use (gateway, data-stocks, execution-trade, ml-models, data-batch-fetch, data-batch-worker, execution-jobs, dead-letter), built once per run from the commit above; functions scale from zero on their first request as in `make run`.",
	"Environment of every process: `DATA_PROVIDER=synthetic` (no network), `LOG_LEVEL=warn`, tracing off, a per-key rate limit the load never reaches (`RATE_LIMIT=1000000`: the limiter still asks Redis on every request), and a paper account large enough that the soak's orders are accepted (`PAPER_INITIAL_CASH=1e14`, `RISK_MAX_OPEN_ORDERS=1000000`). Gateway resilience settings are the defaults: 3 attempts, retry budget 20% + 5/s, breaker at ≥ 50% failures over ≥ 20 calls in 10 s, open 5 s, 3 half-open probes, bulkhead 512 per upstream, upstream timeout 30 s.",
	"The failing and hanging function is `faultfn` (tests/chaos/faultfn), a real process the platform starts in place of `ml-models`, so the gateway reaches it through its real route (`GET /api/v1/ml/models`), transport, breaker, retries and bulkhead; it counts every attempt it receives (the ground truth for retry amplification).",
	"Load: vegeta as a library at fixed rates (open model: requests go out on schedule whether or not earlier ones were answered, so no coordinated omission), 15 s client timeout. The soak's trades use a plain Go client with the retry policy described in its row. Everything (load generator, gateway, functions, Redis) shares the same machine.",
	"Who answered an error is read from the problem+json `detail`: the gateway's limiter, breaker, bulkhead and timeout write fixed texts; anything else is the function's own answer (e.g. data-stocks' 503 when its cache in Redis is down).",
}

func writeDetails(b *strings.Builder, rep *Report) {
	phaseTable := func(title string, ps []Phase) {
		fmt.Fprintf(b, "\n%s\n\n| phase | seconds | requests | sent/s | 2xx | statuses | non-2xx by cause | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---|---|---:|---:|---:|\n", title)
		for _, p := range ps {
			fmt.Fprintf(b, "| %s | %.1f | %d | %.0f | %d | %s | %s | %.2f | %.2f | %.1f |\n", p.Name, p.Seconds, p.Requests, p.SentRate, p.OK, p.statusString(), cell(p.causeString()), p.P50ms, p.P99ms, p.MaxMs)
		}
	}
	b.WriteString("\n## Details\n")
	if s := rep.Soak; s != nil {
		fmt.Fprintf(b, "\n### 1. Soak\n\nHTTP attempts by status: %s. Faults (seconds after the start): ", mapString(s.AttemptStatus))
		parts := make([]string, len(s.Faults))
		for i, f := range s.Faults {
			parts[i] = fmt.Sprintf("%.1f s %s", f.AtS, f.Kind)
			if f.ForS > 0 {
				parts[i] += fmt.Sprintf(" for %.1f s", f.ForS)
			}
		}
		fmt.Fprintf(b, "%s.\n\nReconciliation (every tenant's ledger stream `exec:ledger:{tenant}` read from the start; an order's id is derived from tenant + Idempotency-Key, so a second order for one key would be a second OrderAccepted/OrderRejected under the same id, and an order placed under any other id would show as an order from no request): ledger orders %d; acknowledged %d; acknowledged but missing **%d**; duplicated **%d**; acknowledged with another order id %d; placed but never acknowledged %d; refused but placed %d; client gave up %d; projection vs rebuild mismatches %d.\n",
			strings.Join(parts, "; "), s.LedgerOrders, s.Acked, s.AckedMissing, s.Duplicated, s.WrongOrderID, s.PlacedUnacked, s.RefusedButPlaced, s.GaveUp, s.RebuildMismatches)
		if len(s.Refused) > 0 {
			fmt.Fprintf(b, "\nRefused (final 4xx, nothing recorded): %s.\n", mapString(s.Refused))
		}
	}
	for _, k := range rep.RedisKill {
		phaseTable(fmt.Sprintf("### 2. Redis killed under load at %d/s: the fail-open data route", k.TargetRate), k.Data)
		fmt.Fprintf(b, "\nTrades while Redis was dead: %s; causes %s. All trades: %s.\n", mapString(k.TradesOutage.ByStatus), mapString(k.TradesOutage.Causes), mapString(k.TradesAll.ByStatus))
	}
	if s := rep.SlowRedis; s != nil {
		phaseTable("### 3. Redis slowed by 500 ms: the data route", s.Data)
		fmt.Fprintf(b, "\nTrades while slow: %s (%s). All trades: %s.\n", mapString(s.TradesSlow.ByStatus), mapString(s.TradesSlow.Causes), mapString(s.TradesAll.ByStatus))
	}
	if br := rep.Breaker; br != nil {
		phaseTable("### 4. 100% 503", br.Phases)
		fmt.Fprintf(b, "\nBreaker transitions (the gateway's own \"circuit breaker\" log lines; failures began at %.1f s, healed at %.1f s): %s.\n", br.FailAtS, br.HealS, transitions(br.Transitions))
	}
	if f := rep.Flaky; f != nil {
		fmt.Fprintf(b, "\n### 5. 50%% failures\n\nClient: %s (%s), p50 %.2f ms, p99 %.2f ms. Upstream attempts %d for %d requests: amplification %.3f; the budget allows at most 1 + (0.2·N + 5/s·T + 50 initial tokens)/N = %.3f. Breaker: %s.\n",
			f.Client.statusString(), f.Client.causeString(), f.Client.P50ms, f.Client.P99ms, f.UpstreamAttempts, f.Client.Requests, f.Amplification, f.BudgetBound, transitions(f.Transitions))
	}
	if h := rep.Hang; h != nil {
		phaseTable("### 6. Hanging function: its own route", h.Hanging)
		phaseTable("Another route (data-stocks) at the same time", h.Other)
		fmt.Fprintf(b, "\nBreaker of ml-models: %s.\n", transitions(h.Transitions))
	}
	if m := rep.MidJob; m != nil {
		fmt.Fprintf(b, "\n### 7. Worker killed mid-job\n\n%d jobs of %d symbols; worker killed mid-job in %d; %d succeeded; symbols lost %d, written twice %d; job durations %s s; progress resumed %s ms after each kill. %s\n",
			m.Jobs, m.Symbols, m.KilledMid, m.Succeeded, m.Lost, m.Doubled, strings.Join(m.JobSeconds, ", "), strings.Join(m.ResumeMs, ", "), strings.Join(m.Failures, "; "))
	}
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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

func tools() map[string]string {
	out, _ := exec.Command("redis-server", "--version").CombinedOutput()
	v := strings.TrimSpace(string(out))
	if v == "" {
		v = "not installed"
	}
	return map[string]string{"redis-server": v, "vegeta": "github.com/tsenart/vegeta/v12 v12.13.0 (library)", "toxiproxy": "github.com/Shopify/toxiproxy/v2 v2.5.0 (library)"}
}

func slowRecovery(s *SlowRedis, after Phase) string {
	if s.RecoveredMs/1000 >= after.Seconds-1 {
		return fmt.Sprintf("**not back to baseline** by the end of the %.0f s after the latency was removed (last bad answer %.1f s after; %s)", after.Seconds, s.RecoveredMs/1000, s.RecoveryRule)
	}
	return fmt.Sprintf("%.0f ms (%s)", s.RecoveredMs, s.RecoveryRule)
}
