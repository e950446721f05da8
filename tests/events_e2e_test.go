package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// crashJobs is how many jobs TestBatchWorkerCrashMidJob kills its worker in; the issue's
// figure is 20 (go test ./tests -run CrashMidJob -v -args -crash-jobs=20).
var crashJobs = flag.Int("crash-jobs", 3, "jobs whose ml-batch-worker is killed at a random point")

// startEventsPlatform is startPlatform with a Broker that retries quickly (so a test sees a
// redelivery in milliseconds, not seconds) and extra environment for every process.
func startEventsPlatform(t *testing.T, extraEnv ...string) env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	rs := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := local.Start(ctx, local.Options{
		Dir: "..", BinDir: binDir, SkipBuild: true, RedisURL: rs.URL(), IdleWindow: time.Minute,
		StopTimeout: 5 * time.Second,
		Env:         append(append(os.Environ(), "DATA_PROVIDER=synthetic", "LOG_LEVEL=warn"), extraEnv...),
		Log:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Output:      testWriter{t},
		// 50ms doubling 8 times: 12.75s of redelivery, longer than a crashed worker's lease.
		Broker: local.BrokerOptions{Retry: 8, BackoffDelay: 50 * time.Millisecond},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = p.Close() })
	e := env{p: p, redis: rs, http: &http.Client{Timeout: 60 * time.Second}}
	e.key = DevKey(t, e)
	return e
}

// waitEnsembleReady polls the ensemble's readiness: in local mode it trains its bootstrap
// model first, and no batch should be timed against that.
func waitEnsembleReady(t *testing.T, e env) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, _, _ := e.callFunction(t, "GET", "ensemble", "/health/readiness", nil, "")
		if st == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ensemble not ready after 3 minutes (last %d)", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func symbolList(base, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%d.T", base+i)
	}
	return out
}

func jsonBody(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// submit POSTs a batch through the gateway and returns the job id.
func submit(t *testing.T, e env, path string, body any) string {
	t.Helper()
	resp, b := e.call(t, "POST", path, e.key, jsonBody(t, body))
	var acc batch.Accepted
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.JobID == "" {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	return acc.JobID
}

// streamUntilEnd reads the job's Server-Sent Events through the gateway until "end" and
// returns the last job state and how many states it saw.
func streamUntilEnd(t *testing.T, e env, jobID string) (jobs.Job, int) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.p.GatewayURL()+"/api/v1/execution/jobs/"+jobID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var (
		last  jobs.Job
		n     int
		event string
	)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "job":
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &last); err != nil {
				t.Fatal(err)
			}
			n++
		case line == "" && event == "end":
			return last, n
		}
	}
	t.Fatalf("stream ended without an end event (last %+v, err %v)", last, sc.Err())
	return last, n
}

// checkWrittenOnce asserts that every symbol of the job has exactly one result and that
// exactly one write of each happened (the write log counts effects, not log lines).
func checkWrittenOnce(t *testing.T, e env, prefix, jobID string, symbols []string) {
	t.Helper()
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	res := batch.NewResults(rdb, store.NewKeys(prefix), 0)
	writes, err := res.Writes(context.Background(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range writes {
		seen[s]++
	}
	var lost, doubled []string
	for _, s := range symbols {
		switch seen[s] {
		case 0:
			lost = append(lost, s)
		case 1:
		default:
			doubled = append(doubled, s)
		}
	}
	if len(lost) > 0 || len(doubled) > 0 || len(writes) != len(symbols) {
		t.Fatalf("job %s: %d writes; lost %v; doubled %v", jobID, len(writes), lost, doubled)
	}
}

func TestBatchPredictionThroughTheBroker(t *testing.T) {
	e := startEventsPlatform(t)
	waitEnsembleReady(t, e)

	// Bad input: 400 naming the field, never a job.
	for name, tc := range map[string]struct {
		body, field string
	}{
		"too many symbols": {jsonBody(t, map[string]any{"symbols": symbolList(1000, 101)}), "symbols"},
		"empty list":       {`{"symbols":[]}`, "symbols"},
		"duplicates":       {`{"symbols":["7203.T","7203.T"]}`, "symbols[1]"},
		"unknown field":    {`{"symbols":["7203.T"],"priority":"high"}`, "priority"},
	} {
		resp, b := e.call(t, "POST", "/api/v1/ml/batch-predict", e.key, tc.body)
		var p httpx.Problem
		if resp.StatusCode != 400 || json.Unmarshal(b, &p) != nil || len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
			t.Errorf("%s: %d %s", name, resp.StatusCode, b)
		}
	}
	// Unknown job and another tenant's job: the same 404.
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	other, err := jobs.NewStore(rdb, jobs.Options{}).Create(context.Background(), jobs.Job{Kind: "ml.batch", Tenant: "someone-else", Total: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"no-such-job", other.ID} {
		if resp, b := e.call(t, "GET", "/api/v1/execution/jobs/"+id, e.key, ""); resp.StatusCode != 404 {
			t.Errorf("job %s: %d %s", id, resp.StatusCode, b)
		}
	}

	// Two 100-symbol batches of uncached symbols: the first wakes ml-batch-worker,
	// ml-batch-predict and execution-jobs from zero, the second finds them running. Times are
	// reported, not asserted.
	for i, label := range []string{"functions cold", "functions warm"} {
		syms := symbolList(1000+i*1000, 100)
		start := time.Now()
		id := submit(t, e, "/api/v1/ml/batch-predict", map[string]any{"symbols": syms})
		last, states := streamUntilEnd(t, e, id)
		took := time.Since(start)
		if last.Status != jobs.StatusSucceeded || last.Done != 100 || last.Total != 100 || last.Tenant != gateway.DevKeyTenant {
			t.Fatalf("%s job ended %+v", label, last)
		}
		t.Logf("100-symbol batch prediction (%s): %v from POST to the final SSE event, %d progress states streamed", label, took.Round(time.Millisecond), states)
		checkWrittenOnce(t, e, "ml", id, syms)
		var j jobs.Job
		if resp, b := e.call(t, "GET", "/api/v1/execution/jobs/"+id, e.key, ""); resp.StatusCode != 200 || json.Unmarshal(b, &j) != nil || j.ResultRef != "ml:batch:"+id+":results" {
			t.Fatalf("GET job: %d %s", resp.StatusCode, b)
		}
	}
}

// TestBatchWorkerCrashMidJob kills ml-batch-worker (SIGKILL) at a random point of 100-symbol
// jobs: the Broker redelivers the request, a new process resumes the job once the dead
// one's lease (EVENT_LEASE) lapses, and every symbol is written exactly once.
func TestBatchWorkerCrashMidJob(t *testing.T) {
	e := startEventsPlatform(t, "EVENT_LEASE=2s", "BATCH_CHUNK=5", "BATCH_PARALLEL=1")
	waitEnsembleReady(t, e)
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := jobs.NewStore(rdb, jobs.Options{WatchResync: time.Second})

	killedMidJob := 0
	for i := range *crashJobs {
		syms := symbolList(3000+i*100, 100) // fresh symbols: no cache hit shortens the job
		killAt := int64(10 + rand.IntN(81))
		id := submit(t, e, "/api/v1/ml/batch-predict", map[string]any{"symbols": syms})
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		updates, err := st.Watch(ctx, gateway.DevKeyTenant, id)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var (
			last   jobs.Job
			killed bool
		)
		for j := range updates {
			last = j
			if !killed && j.Status == jobs.StatusRunning && j.Done >= killAt {
				if err := e.p.Kill("ml-batch-worker"); err == nil {
					killed = true
					killedMidJob++
					t.Logf("job %d: killed ml-batch-worker at %d/100", i, j.Done)
				}
			}
		}
		cancel()
		if last.Status != jobs.StatusSucceeded || last.Done != 100 {
			t.Fatalf("job %d (%s) after the kill: %+v", i, id, last)
		}
		checkWrittenOnce(t, e, "ml", id, syms)
	}
	t.Logf("%d jobs, worker killed mid-job in %d, cold starts of ml-batch-worker %d: 0 lost, 0 doubled",
		*crashJobs, killedMidJob, len(e.p.ColdStarts("ml-batch-worker")))
	if killedMidJob == 0 {
		t.Fatal("no job was running when its worker was killed; the test proved nothing")
	}
}

// TestPoisonEventIsDeadLetteredAndNothingStalls publishes a malformed batch request to the
// Broker next to a good batch fetch: the fetch completes while the poison event goes to the
// dead-letter sink with its original id and the subscriber's error.
func TestPoisonEventIsDeadLetteredAndNothingStalls(t *testing.T) {
	e := startEventsPlatform(t)
	pub, err := events.NewPublisher(e.p.BrokerURL())
	if err != nil {
		t.Fatal(err)
	}
	poisonID := "poison-" + fmt.Sprint(time.Now().UnixNano())
	if _, err := pub.PublishID(context.Background(), poisonID, events.TypeMLBatchRequested, events.SourceMLBatchPredict, "",
		map[string]any{"job_id": "", "symbols": "not a list"}); err != nil {
		t.Fatal(err)
	}
	syms := symbolList(5000, 20)
	id := submit(t, e, "/api/v1/data/batch-fetch", map[string]any{"symbols": syms, "period": "3mo", "interval": "1d"})
	last, _ := streamUntilEnd(t, e, id)
	if last.Status != jobs.StatusSucceeded || last.Done != 20 {
		t.Fatalf("data job %+v", last)
	}
	checkWrittenOnce(t, e, "data", id, syms)
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for _, s := range syms {
		if n, _ := rdb.Exists(context.Background(), "data:bars:synthetic:"+s+":3mo:1d").Result(); n != 1 {
			t.Errorf("%s: cache not warmed", s)
		}
	}

	type letter struct {
		EventID string `json:"event_id"`
		Type    string `json:"type"`
		Dest    string `json:"error_dest"`
		Code    int    `json:"error_code"`
	}
	var found *letter
	waitFor(t, "the poison event in the dead letters", func() bool {
		var list struct {
			DeadLetters []letter `json:"dead_letters"`
		}
		resp, b := e.call(t, "GET", "/api/v1/events/dead-letters", e.key, "")
		if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil {
			t.Fatalf("dead letters: %d %s", resp.StatusCode, b)
		}
		for _, l := range list.DeadLetters {
			if l.EventID == poisonID {
				found = &l
				return true
			}
		}
		return false
	})
	if found.Code != 400 || found.Type != events.TypeMLBatchRequested || !strings.HasPrefix(found.Dest, "http://ml-batch-worker.") {
		t.Fatalf("dead letter %+v", found)
	}
}

// TestCatalogEventsMatchTheContract: the catalog spells event types and sources out (it
// must not link the SDK); they must be the events package's.
func TestCatalogEventsMatchTheContract(t *testing.T) {
	sources := []string{events.SourceMLBatchPredict, events.SourceDataBatchFetch, events.SourceMLBatchWorker,
		events.SourceDataBatchWorker, events.SourceMLModels, events.SourceExecutionScheduler,
		events.SourceExecutionTrade, events.SourceNotificationsSend}
	for _, f := range functions.Catalog() {
		for _, s := range f.Events {
			if !slices.Contains(events.Types, s.Type) {
				t.Errorf("%s subscribes to %s, which package events does not define", f.Name, s.Type)
			}
			if s.Source != "" && !slices.Contains(sources, s.Source) && !strings.HasPrefix(s.Source, "/apis/v1/namespaces/") {
				t.Errorf("%s filters on source %s, which no function emits", f.Name, s.Source)
			}
		}
		for _, typ := range f.Publishes {
			if !slices.Contains(events.Types, typ) {
				t.Errorf("%s publishes %s, which package events does not define", f.Name, typ)
			}
		}
	}
}
