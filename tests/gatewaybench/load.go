package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// wrkResult is what one wrk run printed.
type wrkResult struct {
	RPS      float64 `json:"requests_per_s"`
	Requests int64   `json:"requests"`
	Seconds  float64 `json:"seconds"`
	P50ms    float64 `json:"p50_ms"`
	P95ms    float64 `json:"p95_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p99_9_ms"`
	Non2xx   int64   `json:"non_2xx"`
	SockErrs int64   `json:"socket_errors"`
	CPUms    float64 `json:"server_cpu_ms"`
	CPUPer1k float64 `json:"server_cpu_ms_per_1000_requests"`
	WrkCPUms float64 `json:"wrk_cpu_ms"`
	// Background is the share of the machine's CPU that processes other than the harness's
	// (server, wrk, backend, redis-server) used during the run.
	Background float64 `json:"background_cpu_share"`
	ServerPID  int     `json:"-"`
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reTotal    = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(m?s|m)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	// Printed by percentileScript's done hook: "PCT <percentile> <microseconds>".
	rePct = regexp.MustCompile(`^PCT ([0-9.]+) ([0-9]+)\s*$`)
)

// percentileScript makes wrk print the percentiles its --latency table lacks (p95, p99.9)
// from the same HdrHistogram, in microseconds.
const percentileScript = `done = function(summary, latency, requests)
  for _, p in ipairs({50, 95, 99, 99.9}) do
    io.write(string.format("PCT %g %d\n", p, latency:percentile(p)))
  end
end
`

// runWrk runs wrk with args against url, measuring meanwhile the CPU time of the server pid,
// of wrk itself, of the others the harness runs (backend, redis-server) and of the whole
// machine, so that the report can say how much of the machine other processes took.
func runWrk(ctx context.Context, args []string, url string, header string, pid int, others ...int) (wrkResult, string, error) {
	a := append(slices.Clone(args), "--latency")
	if header != "" {
		a = append(a, "-H", header)
	}
	a = append(a, url)
	cpu0, busy0 := cpuTime(pid), machineBusy()
	var oth0 time.Duration
	for _, o := range others {
		oth0 += cpuTime(o)
	}
	cmd := exec.CommandContext(ctx, "wrk", a...)
	out, err := cmd.CombinedOutput()
	cpu, busy := cpuTime(pid)-cpu0, machineBusy()-busy0
	var oth time.Duration
	for _, o := range others {
		oth += cpuTime(o)
	}
	oth -= oth0
	var wrkCPU time.Duration
	if cmd.ProcessState != nil {
		wrkCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	text := string(out)
	if err != nil {
		return wrkResult{}, text, fmt.Errorf("wrk: %w: %s", err, text)
	}
	var r wrkResult
	if m := reRPS.FindStringSubmatch(text); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	} else {
		return r, text, fmt.Errorf("wrk printed no Requests/sec: %s", text)
	}
	if m := reTotal.FindStringSubmatch(text); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
		r.Seconds, _ = strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "ms":
			r.Seconds /= 1000
		case "m":
			r.Seconds *= 60
		}
	}
	if m := reNon2xx.FindStringSubmatch(text); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSockErrs.FindStringSubmatch(text); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.SockErrs += n
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		m := rePct.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		us, _ := strconv.ParseFloat(m[2], 64)
		v := us / 1000
		switch m[1] {
		case "50":
			r.P50ms = v
		case "95":
			r.P95ms = v
		case "99":
			r.P99ms = v
		case "99.9":
			r.P999ms = v
		}
	}
	r.CPUms = float64(cpu.Milliseconds())
	r.WrkCPUms = float64(wrkCPU.Milliseconds())
	if capacity := time.Duration(r.Seconds * float64(time.Second) * float64(runtime.NumCPU())); capacity > 0 {
		r.Background = max(0, float64(busy-cpu-oth-wrkCPU)/float64(capacity))
	}
	if r.Requests > 0 {
		r.CPUPer1k = r.CPUms / float64(r.Requests) * 1000
	}
	return r, text, nil
}

// fixedRate is one open-model run at a constant rate (vegeta: requests are sent on schedule
// whether or not earlier ones have been answered, so slow answers cannot hide latency).
type fixedRate struct {
	Target    string  `json:"target"`
	Rate      int     `json:"rate"`
	Seconds   float64 `json:"seconds"`
	Requests  int     `json:"requests"`
	Success   float64 `json:"success_ratio"`
	P50ms     float64 `json:"p50_ms"`
	P95ms     float64 `json:"p95_ms"`
	P99ms     float64 `json:"p99_ms"`
	P999ms    float64 `json:"p99_9_ms"`
	MaxMs     float64 `json:"max_ms"`
	CPUPer1k  float64 `json:"server_cpu_ms_per_1000_requests,omitempty"`
	StatusMix string  `json:"status_mix"`
	// Errors are the transport errors (no HTTP status), most frequent first.
	Errors string `json:"errors,omitempty"`
	Round  int    `json:"round,omitempty"`
	// MachineBusy is the share of the machine's CPU in use during the run (all processes).
	MachineBusy float64 `json:"machine_busy"`
	// Inside is what the gateway's own access log says about the run (gateway targets only).
	Inside *insideTimes `json:"gateway_access_log,omitempty"`
}

// insideTimes are percentiles over one run's access lines: the handler's time (ms), the part
// spent waiting for the upstream's answer (upstream_ms), and the rest, the gateway's own work
// (ms - upstream_ms). What the client sees beyond the handler's time is the hop itself: the
// kernel, the scheduler and net/http reading the request and writing the answer.
type insideTimes struct {
	Lines       int     `json:"lines"`
	HandlerP50  float64 `json:"handler_p50_ms"`
	HandlerP99  float64 `json:"handler_p99_ms"`
	UpstreamP99 float64 `json:"upstream_p99_ms"`
	OwnP50      float64 `json:"own_p50_ms"`
	OwnP99      float64 `json:"own_p99_ms"`
	OwnP999     float64 `json:"own_p99_9_ms"`
}

// readInside reads the access lines written to path from offset on.
func readInside(path string, offset int64) (*insideTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	var handler, up, own []float64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg        string   `json:"msg"`
			Ms         float64  `json:"ms"`
			UpstreamMs *float64 `json:"upstream_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "access" || line.UpstreamMs == nil {
			continue
		}
		handler, up, own = append(handler, line.Ms), append(up, *line.UpstreamMs), append(own, line.Ms-*line.UpstreamMs)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(handler) == 0 {
		return nil, errors.New("no access lines with upstream_ms")
	}
	for _, xs := range [][]float64{handler, up, own} {
		slices.Sort(xs)
	}
	q := func(xs []float64, p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return &insideTimes{Lines: len(handler), HandlerP50: q(handler, 0.5), HandlerP99: q(handler, 0.99),
		UpstreamP99: q(up, 0.99), OwnP50: q(own, 0.5), OwnP99: q(own, 0.99), OwnP999: q(own, 0.999)}, nil
}

// attackResult is a run's raw answers, for the scenarios that look at each one.
type attackResult struct {
	Start   time.Time
	Results []vegeta.Result
}

func attack(ctx context.Context, tr vegeta.Targeter, rate int, d time.Duration, name string) attackResult {
	// Our own transport, so that its connections are closed when the run ends: left open, an
	// overloaded run's thousands of connections outlive it and the next runs fail to dial
	// (EMFILE, or no free ephemeral port), which would be the load generator's failure
	// reported as the server's.
	tp := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext}
	defer tp.CloseIdleConnections()
	atk := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: tp}), vegeta.Timeout(10*time.Second), vegeta.KeepAlive(true),
		vegeta.Workers(64), vegeta.MaxWorkers(4096))
	res := attackResult{Start: time.Now(), Results: make([]vegeta.Result, 0, int(float64(rate)*d.Seconds())+16)}
	ch := atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, name)
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return res
			}
			r.Body = trimBody(r.Body)
			res.Results = append(res.Results, *r)
		case <-ctx.Done():
			atk.Stop()
		}
	}
}

// trimBody keeps the start of a refusal's body (its problem type) and drops 200 bodies.
func trimBody(b []byte) []byte {
	if len(b) > 256 {
		return b[:256]
	}
	return b
}

func summarizeFixed(target string, rate int, d time.Duration, ar attackResult) fixedRate {
	lat := make([]time.Duration, 0, len(ar.Results))
	codes := map[uint16]int{}
	errs := map[string]int{}
	ok := 0
	for _, r := range ar.Results {
		codes[r.Code]++
		if r.Code == 0 && r.Error != "" {
			errs[errorKind(r.Error)]++
		}
		if r.Code >= 200 && r.Code < 300 && r.Error == "" {
			ok++
		}
		lat = append(lat, r.Latency)
	}
	slices.Sort(lat)
	f := fixedRate{Target: target, Rate: rate, Seconds: d.Seconds(), Requests: len(ar.Results), StatusMix: statusMix(codes), Errors: errorMix(errs)}
	if len(lat) == 0 {
		return f
	}
	f.Success = float64(ok) / float64(len(lat))
	f.P50ms, f.P95ms, f.P99ms, f.P999ms = ms(quantile(lat, 0.50)), ms(quantile(lat, 0.95)), ms(quantile(lat, 0.99)), ms(quantile(lat, 0.999))
	f.MaxMs = ms(lat[len(lat)-1])
	return f
}

// errorKind drops the addresses from a transport error, so that equal causes count together:
// "Get \"http://127.0.0.1:41000/...\": dial tcp 127.0.0.1:41000: connect: cannot assign
// requested address" becomes "dial tcp: connect: cannot assign requested address".
func errorKind(e string) string {
	if i := strings.LastIndex(e, "\": "); i >= 0 {
		e = e[i+3:]
	}
	return reAddr.ReplaceAllString(e, "")
}

var reAddr = regexp.MustCompile(` ?(\[[0-9a-f:]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}):[0-9]+(->[^ ]+:[0-9]+)?`)

// errorMix is "count× cause" for the three most frequent causes.
func errorMix(errs map[string]int) string {
	kinds := make([]string, 0, len(errs))
	for k := range errs {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return errs[b] - errs[a] })
	var parts []string
	for i, k := range kinds {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d other causes", len(kinds)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", errs[k], k))
	}
	return strings.Join(parts, "; ")
}

// quantile is the nearest-rank quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func statusMix(codes map[uint16]int) string {
	keys := make([]int, 0, len(codes))
	for c := range codes {
		keys = append(keys, int(c))
	}
	slices.Sort(keys)
	var parts []string
	for _, c := range keys {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "error"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, codes[uint16(c)]))
	}
	return strings.Join(parts, " ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func staticTarget(url string, h http.Header) vegeta.Targeter {
	return vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url, Header: h})
}
