package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// attack runs vegeta at a fixed rate (open model: each request is sent on schedule whether
// or not earlier ones were answered, so a stall shows as latency, not as fewer requests) and
// keeps every result, with the start of refusal bodies (their problem detail).
func attack(ctx context.Context, tr vegeta.Targeter, rate int, d time.Duration, name string) []vegeta.Result {
	atk := vegeta.NewAttacker(vegeta.Timeout(15*time.Second), vegeta.KeepAlive(true),
		vegeta.Workers(64), vegeta.MaxWorkers(8192), vegeta.Connections(10000))
	out := make([]vegeta.Result, 0, int(float64(rate)*d.Seconds())+16)
	ch := atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, name)
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				return out
			}
			if r.Code >= 200 && r.Code < 300 {
				r.Body = nil
			} else if len(r.Body) > 600 {
				r.Body = r.Body[:600]
			}
			out = append(out, *r)
		case <-ctx.Done():
			atk.Stop()
		}
	}
}

func getTarget(url, key string) vegeta.Targeter {
	return vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url,
		Header: http.Header{"Authorization": {"Bearer " + key}}})
}

// cause names who answered a non-2xx: the gateway's own refusals are told apart by their
// problem detail, everything else is the function's (or the activator's) answer.
func cause(r vegeta.Result) string {
	if r.Code == 0 {
		e := r.Error
		switch {
		case strings.Contains(e, "Client.Timeout") || strings.Contains(e, "deadline exceeded"):
			return "client timeout (15 s)"
		case strings.Contains(e, "connection refused"):
			return "connection refused"
		}
		if i := strings.LastIndex(e, ": "); i >= 0 {
			e = e[i+2:] // drop the addresses: "read tcp a->b: read: connection reset by peer"
		}
		return "transport error: " + e
	}
	var p struct {
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(r.Body, &p)
	return classify(int(r.Code), p.Detail)
}

func classify(code int, detail string) string {
	d := strings.ToLower(detail)
	switch {
	case strings.Contains(d, "rate limiter"):
		return "gateway limiter (fail-closed)"
	case strings.Contains(d, "circuit open"):
		return "gateway breaker open"
	case strings.Contains(d, "concurrency limit"):
		return "gateway bulkhead full"
	case code == 504 && strings.Contains(d, "timed out"):
		return "gateway upstream timeout"
	case strings.Contains(d, "authentication"):
		return "gateway auth unavailable"
	case strings.Contains(d, "faultfn"):
		return "injected by faultfn"
	case strings.Contains(d, "upstream") && strings.Contains(d, "unavailable"):
		return "gateway: function unreachable"
	case strings.Contains(d, "is not available") || strings.Contains(d, "did not answer"):
		return "activator: function not available"
	case detail == "":
		return "no problem detail"
	}
	if len(detail) > 60 {
		detail = detail[:60] + "…"
	}
	return "function: " + detail
}

// tally is a status and cause count.
type tally struct {
	Requests int            `json:"requests"`
	OK       int            `json:"2xx"`
	Status   map[string]int `json:"by_status"`
	Causes   map[string]int `json:"non_2xx_by_cause,omitempty"`
	P50ms    float64        `json:"p50_ms"`
	P99ms    float64        `json:"p99_ms"`
	MaxMs    float64        `json:"max_ms"`
	// SentRate is requests / (last send - first send): what the load generator achieved.
	SentRate float64 `json:"sent_per_s"`
}

func count(rs []vegeta.Result, keep func(vegeta.Result) bool) tally {
	t := tally{Status: map[string]int{}, Causes: map[string]int{}}
	var lat []time.Duration
	var first, last time.Time
	for _, r := range rs {
		if keep != nil && !keep(r) {
			continue
		}
		t.Requests++
		code := strconv.Itoa(int(r.Code))
		if r.Code == 0 {
			code = "error"
		}
		t.Status[code]++
		if r.Code >= 200 && r.Code < 300 {
			t.OK++
		} else {
			t.Causes[cause(r)]++
		}
		lat = append(lat, r.Latency)
		if first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		t.P50ms, t.P99ms, t.MaxMs = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1])
	}
	if d := last.Sub(first).Seconds(); d > 0 {
		t.SentRate = float64(t.Requests-1) / d
	}
	return t
}

func (t tally) statusString() string {
	keys := make([]string, 0, len(t.Status))
	for k := range t.Status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, t.Status[k])
	}
	return strings.Join(parts, " ")
}

func (t tally) causeString() string {
	keys := make([]string, 0, len(t.Causes))
	for k := range t.Causes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return t.Causes[b] - t.Causes[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, t.Causes[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// between keeps results sent in [from, to).
func between(from, to time.Time) func(vegeta.Result) bool {
	return func(r vegeta.Result) bool { return !r.Timestamp.Before(from) && r.Timestamp.Before(to) }
}

// recovery is how long after healed the route answered well again: when the first good
// answer (per good) to a request sent after healed arrived, and when the last bad one did
// (after which every answer was good). lastBad is 0 when none was bad.
func recovery(rs []vegeta.Result, healed time.Time, good func(vegeta.Result) bool) (firstOK, lastBad time.Duration) {
	firstOK, lastBad = -1, 0
	for _, r := range rs {
		if r.Timestamp.Before(healed) {
			continue
		}
		d := r.Timestamp.Add(r.Latency).Sub(healed) // when the answer arrived
		ok := good(r)
		if ok && (firstOK < 0 || d < firstOK) {
			firstOK = d
		}
		if !ok && d > lastBad {
			lastBad = d
		}
	}
	return firstOK, lastBad
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
