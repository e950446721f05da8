package batch_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func TestParseSymbols(t *testing.T) {
	t.Parallel()
	many := make([]string, 11)
	for i := range many {
		many[i] = string(rune('A'+i)) + ".T"
	}
	tests := map[string]struct {
		in    []string
		field string // "" means valid
	}{
		"ok":             {[]string{"7203.T", "^N225", "aapl"}, ""},
		"empty":          {nil, "symbols"},
		"too many":       {many, "symbols"},
		"duplicate case": {[]string{"7203.T", "6758.T", "7203.t"}, "symbols[2]"},
		"bad symbol":     {[]string{"7203.T", "a b"}, "symbols[1]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := batch.ParseSymbols(tc.in, 10)
			if tc.field == "" {
				if err != nil || len(out) != len(tc.in) || out[2] != "AAPL" {
					t.Fatalf("%v %v", out, err)
				}
				return
			}
			he := httpx.AsError(err)
			if he.Code != httpx.CodeInvalid || len(he.Fields) == 0 || he.Fields[0].Field != tc.field {
				t.Fatalf("err %+v", he)
			}
		})
	}
}

func FuzzParseSymbols(f *testing.F) {
	f.Add("7203.T,6758.T", 3)
	f.Add(",,", 1)
	f.Fuzz(func(t *testing.T, csv string, max int) {
		out, err := batch.ParseSymbols(strings.Split(csv, ","), max)
		if err == nil && (len(out) == 0 || len(out) > max) {
			t.Fatalf("accepted %d symbols with max %d", len(out), max)
		}
		if err != nil && httpx.ErrorCode(err) != httpx.CodeInvalid {
			t.Fatalf("error code %s", httpx.ErrorCode(err))
		}
	})
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	req := func(header string, p *auth.Principal) *httpx.Error {
		r := httptest.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set(batch.TenantHeader, header)
		}
		if p != nil {
			r = r.WithContext(auth.NewContextWithPrincipal(r.Context(), p))
		}
		_, err := batch.NewIdentity(header == "token-mode" || p != nil && p.Subject == "token").Tenant(r)
		if err == nil {
			return nil
		}
		return httpx.AsError(err)
	}
	if err := req("acme", nil); err != nil {
		t.Errorf("header mode: %v", err)
	}
	if err := req("", &auth.Principal{Subject: "token", Tenant: "acme"}); err != nil {
		t.Errorf("principal: %v", err)
	}
	for name, err := range map[string]*httpx.Error{
		"no tenant":        req("", nil),
		"malformed":        req("a/b", nil),
		"token mode":       req("token-mode", nil),
		"principal no ten": req("", &auth.Principal{Subject: "token"}),
	} {
		if err == nil || err.Code != httpx.CodeUnauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func newRunner(t *testing.T) (*batch.Runner, *jobs.Store) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	st := jobs.NewStore(rdb, jobs.Options{})
	return &batch.Runner{Jobs: st, Results: batch.NewResults(rdb, store.NewKeys("t"), 0), Chunk: 2, Parallel: 2}, st
}

func TestRunnerResumesAndFinishesOnce(t *testing.T) {
	t.Parallel()
	r, st := newRunner(t)
	ctx := t.Context()
	syms := []string{"A", "B", "C", "D", "E", "F"}
	j, _ := st.Create(ctx, jobs.Job{Kind: "k", Tenant: "acme", Total: 6})
	spec := batch.Spec{Tenant: "acme", JobID: j.ID, Symbols: syms}
	var calls atomic.Int64
	flaky := func(ctx context.Context, chunk []string) (map[string]batch.Outcome, error) {
		if calls.Add(1) == 2 {
			return nil, httpx.Errorf(httpx.CodeUnavailable, "down")
		}
		out := map[string]batch.Outcome{}
		for _, s := range chunk {
			if s == "E" {
				out[s] = batch.Outcome{Err: errors.New("unknown symbol")}
				continue
			}
			out[s] = batch.Outcome{Value: map[string]string{"s": s}}
		}
		return out, nil
	}
	if _, err := r.Run(ctx, spec, flaky); httpx.ErrorCode(err) != httpx.CodeUnavailable {
		t.Fatalf("first run: %v", err)
	}
	if j, _ := st.Get(ctx, "acme", j.ID); j.Status != jobs.StatusRunning {
		t.Fatalf("after the outage: %+v", j)
	}
	sum, err := r.Run(ctx, spec, flaky)
	if err != nil || sum.Status != jobs.StatusSucceeded || sum.OK != 5 || len(sum.Failed) != 1 || sum.Failed[0] != "E" {
		t.Fatalf("second run: %+v %v", sum, err)
	}
	// A third run (a late duplicate) changes nothing and reports the same end.
	again, err := r.Run(ctx, spec, func(context.Context, []string) (map[string]batch.Outcome, error) {
		t.Fatal("work ran for an ended job")
		return nil, nil
	})
	if err != nil || again.Status != jobs.StatusSucceeded || again.OK != 5 {
		t.Fatalf("third run: %+v %v", again, err)
	}
	writes, _ := r.Results.Writes(ctx, j.ID)
	if len(writes) != 6 {
		t.Fatalf("%d writes: %v", len(writes), writes)
	}
	// The failed chunk's work was started twice; a written symbol's never was.
	attempts, _ := r.Results.Attempts(ctx, j.ID)
	started := map[string]int{}
	for _, s := range attempts {
		started[s]++
	}
	repeated := 0
	for _, s := range syms {
		switch started[s] {
		case 0:
			t.Errorf("%s: work never started", s)
		case 1:
		default:
			repeated++
		}
	}
	if repeated != 2 {
		t.Errorf("attempts %v: %d symbols repeated, want the failed chunk's 2", attempts, repeated)
	}
}

func TestRunnerStopsOnCancelAndFailsWhenAllFail(t *testing.T) {
	t.Parallel()
	r, st := newRunner(t)
	ctx := t.Context()
	j, _ := st.Create(ctx, jobs.Job{Kind: "k", Tenant: "acme", Total: 4})
	spec := batch.Spec{Tenant: "acme", JobID: j.ID, Symbols: []string{"A", "B", "C", "D"}}
	sum, err := r.Run(ctx, spec, func(ctx context.Context, chunk []string) (map[string]batch.Outcome, error) {
		_, _ = st.Cancel(ctx, "acme", j.ID) // the tenant cancels mid-job
		return map[string]batch.Outcome{}, nil
	})
	if err != nil || sum.Status != jobs.StatusCancelled {
		t.Fatalf("cancelled: %+v %v", sum, err)
	}

	j2, _ := st.Create(ctx, jobs.Job{Kind: "k", Tenant: "acme", Total: 2})
	sum, err = r.Run(ctx, batch.Spec{Tenant: "acme", JobID: j2.ID, Symbols: []string{"A", "B"}},
		func(context.Context, []string) (map[string]batch.Outcome, error) {
			return map[string]batch.Outcome{}, nil
		})
	if err != nil || sum.Status != jobs.StatusFailed || sum.Error != "all 2 symbols failed" {
		t.Fatalf("all failed: %+v %v", sum, err)
	}
}
