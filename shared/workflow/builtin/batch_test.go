package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/workflow"
)

// batchFakes plays the functions daily-predict calls, routed by Host as the activator does.
// Its batch job runs for `polls` status reads, then ends as `outcome`.
type batchFakes struct {
	mu      sync.Mutex
	calls   map[string]int
	batches [][]string // the symbols of every ml-batch-predict call
	message string     // the last notification's message
	polls   int
	outcome jobs.Status
	onPoll  func(r *http.Request) // optional hook, may block
}

var fiveSymbols = []string{"7203.T", "6758.T", "8306.T", "9984.T", "6861.T"}

func (f *batchFakes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fn, _, _ := strings.Cut(r.Host, ".")
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.calls[fn]++
	n, hook := f.calls[fn], f.onPoll
	f.mu.Unlock()
	switch fn {
	case fnSelect:
		var syms []map[string]string
		for _, s := range fiveSymbols {
			syms = append(syms, map[string]string{"ticker": s})
		}
		_ = httpx.Encode(w, 200, map[string]any{"symbols": syms})
	case fnStocks:
		_ = httpx.Encode(w, 200, map[string]any{"total_points": 60})
	case fnBatchPredict:
		var syms []string
		for _, s := range body["symbols"].([]any) {
			syms = append(syms, s.(string))
		}
		f.mu.Lock()
		f.batches = append(f.batches, syms)
		f.mu.Unlock()
		_ = httpx.Encode(w, 202, map[string]any{"job_id": fmt.Sprintf("job-%d", n), "status": "queued", "status_url": "/api/v1/execution/jobs/job-1"})
	case fnJobs:
		if hook != nil {
			hook(r)
		}
		j := jobs.Job{ID: strings.TrimPrefix(r.URL.Path, "/api/v1/execution/jobs/"), Kind: "ml.batch", Tenant: "acme", Status: jobs.StatusRunning, Total: 5}
		if n > f.polls {
			j.Status, j.Done = f.outcome, 5
			if f.outcome == jobs.StatusSucceeded {
				j.ResultRef, j.Result = "ml:batch:"+j.ID+":results", json.RawMessage(`{"ok":4,"failed":["6861.T"]}`)
			} else {
				j.Error = "all 5 symbols failed"
			}
		}
		_ = httpx.Encode(w, 200, j)
	case fnNotify:
		f.mu.Lock()
		f.message, _ = body["message"].(string)
		f.mu.Unlock()
		_ = httpx.Encode(w, 202, map[string]any{"notification_id": "n-1"})
	default:
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeNotFound, "no function serves host %q", r.Host))
	}
}

func (f *batchFakes) count(fn string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[fn] }

type batchEnv struct {
	fakes  *batchFakes
	runner *workflow.Runner
	wf     workflow.Workflow
}

func newBatchEnv(t *testing.T, f *batchFakes) *batchEnv {
	t.Helper()
	f.calls = map[string]int{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}}
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s := steps{c: &Caller{Client: client, Namespace: "day-trade", Timeout: 5 * time.Second}, poll: 5 * time.Millisecond}
	wf := workflows(s)[DailyPredict]
	return &batchEnv{fakes: f, runner: workflow.NewRunner(rdb, store.NewKeys("exec"), jobs.NewStore(rdb, jobs.Options{}), workflow.Options{Lease: time.Minute}), wf: wf}
}

func (e *batchEnv) create(t *testing.T, id string) {
	t.Helper()
	if _, err := e.runner.Create(context.Background(), e.wf, id, "acme", json.RawMessage(`{"count":5}`)); err != nil {
		t.Fatal(err)
	}
}

// TestBatchPredictIsOneCallForAllSymbols: daily-predict's five selected symbols are predicted by one
// ml-batch-predict job (no ml-predict call), waited for through execution-jobs, and the
// notification reports the job.
func TestBatchPredictIsOneCallForAllSymbols(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, &batchFakes{polls: 3, outcome: jobs.StatusSucceeded})
	e.create(t, "run-1")
	j, err := e.runner.Execute(context.Background(), e.wf, "acme", "run-1")
	if err != nil || j.Status != jobs.StatusSucceeded {
		t.Fatalf("run: %+v %v", j, err)
	}
	f := e.fakes
	if n := f.count(fnBatchPredict); n != 1 || len(f.batches[0]) != len(fiveSymbols) || strings.Join(f.batches[0], ",") != strings.Join(fiveSymbols, ",") {
		t.Fatalf("%d batch calls with %v; want one with %v", n, f.batches, fiveSymbols)
	}
	if n := f.count(fnPredict); n != 0 {
		t.Fatalf("%d ml-predict calls beside the batch", n)
	}
	if n := f.count(fnJobs); n != 4 {
		t.Fatalf("job read %d times, want 4 (3 running, then succeeded)", n)
	}
	if n := f.count(fnStocks); n != len(fiveSymbols) {
		t.Fatalf("fetch made %d calls", n)
	}
	if !strings.Contains(f.message, "batch prediction job job-1 succeeded: 4 predicted, 1 failed (6861.T)") {
		t.Fatalf("notification %q", f.message)
	}
	var res map[string]any
	if err := json.Unmarshal(j.Result, &res); err != nil || res["batch_job"] != "job-1" || res["predictions"] != 4.0 {
		t.Fatalf("result %s", j.Result)
	}
}

// TestBatchPredictResumesTheSameJob: the executor stops while waiting for the job; the
// resumed run waits for the same job and queues no second one.
func TestBatchPredictResumesTheSameJob(t *testing.T) {
	t.Parallel()
	ctx, crash := context.WithCancel(context.Background())
	var once sync.Once
	f := &batchFakes{polls: 2, outcome: jobs.StatusSucceeded}
	f.onPoll = func(r *http.Request) { once.Do(func() { crash(); <-r.Context().Done() }) }
	e := newBatchEnv(t, f)
	e.create(t, "run-2")
	if _, err := e.runner.Execute(ctx, e.wf, "acme", "run-2"); err == nil {
		t.Fatal("interrupted run reported no error")
	}
	j, err := e.runner.Execute(context.Background(), e.wf, "acme", "run-2")
	if err != nil || j.Status != jobs.StatusSucceeded {
		t.Fatalf("resumed run: %+v %v", j, err)
	}
	if n, m := f.count(fnBatchPredict), f.count(fnSelect); n != 1 || m != 1 {
		t.Fatalf("batch queued %d times, select ran %d times; want 1 and 1", n, m)
	}
}

// TestBatchPredictFailedJobFailsTheStep: a job that fails fails the predict step with its
// reason, and nothing is notified.
func TestBatchPredictFailedJobFailsTheStep(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t, &batchFakes{polls: 0, outcome: jobs.StatusFailed})
	e.create(t, "run-3")
	j, err := e.runner.Execute(context.Background(), e.wf, "acme", "run-3")
	if err != nil || j.Status != jobs.StatusFailed || !strings.Contains(j.Error, "step predict failed: batch prediction job job-1 failed: all 5 symbols failed") {
		t.Fatalf("run: %+v %v", j, err)
	}
	if n := e.fakes.count(fnNotify); n != 0 {
		t.Fatalf("%d notifications for a failed run", n)
	}
}
