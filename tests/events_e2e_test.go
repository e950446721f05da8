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
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// crashJobs is how many jobs TestBatchWorkerCrashMidJob kills its worker in; small for make
// test, 20 for the figure in docs/events.md (go test ./tests -run CrashMidJob -v -args -crash-jobs=20).
var crashJobs = flag.Int("crash-jobs", 3, "jobs whose ml-batch-worker is killed once each, at a random point in [10,90] of 100 symbols")

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

// hashSets counts the result writes of prefix's batch jobs from now on (checkWrittenOnce).
func hashSets(t *testing.T, e env, prefix string) *batchtest.HashSets {
	t.Helper()
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return batchtest.CountHashSets(t, rdb, prefix+":batch:")
}

// tally is what checkWrittenOnce found for one job.
type tally struct {
	lost     []string // symbols with no result
	doubled  int      // result writes beyond one per symbol, as Redis reported them
	repeated int      // symbols whose work started more than once (at-least-once work)
	attempts int      // starts of a symbol's work, in all
}

// checkWrittenOnce asserts that every symbol of the job has a result and that each result
// was set exactly once. The sets are counted from Redis's keyspace notifications (sets,
// started before the job), not from the put script's own write log, which only records
// the writes HSETNX let through and so could never show a second one. It also returns how
// many symbols had their work started again (a run resumed after a crash redoes the chunk
// that was in flight), which is allowed: only a second write of a result is not.
func checkWrittenOnce(t *testing.T, e env, sets *batchtest.HashSets, prefix, jobID string, symbols []string) tally {
	t.Helper()
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	res := batch.NewResults(rdb, store.NewKeys(prefix), 0)
	written, err := res.Written(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	attempts, err := res.Attempts(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	writes, err := res.Writes(ctx, jobID)
	if err != nil {
		t.Fatal(err)
	}
	sets.Sync(t)
	nsets := sets.Count(res.Key(jobID))

	started := map[string]int{}
	for _, s := range attempts {
		started[s]++
	}
	tl := tally{attempts: len(attempts), doubled: nsets - len(written)}
	for _, s := range symbols {
		if !written[s] {
			tl.lost = append(tl.lost, s)
		}
		if started[s] > 1 {
			tl.repeated++
		}
	}
	switch {
	case nsets < len(written):
		t.Fatalf("job %s: %d results but Redis reported only %d writes; the counter missed events", jobID, len(written), nsets)
	case len(tl.lost) > 0 || tl.doubled != 0 || len(written) != len(symbols) || len(writes) != len(symbols):
		t.Fatalf("job %s: %d results, %d result writes seen by Redis (%d in the write log); lost %v; doubled %d",
			jobID, len(written), nsets, len(writes), tl.lost, tl.doubled)
	}
	return tl
}

func TestBatchPredictionThroughTheBroker(t *testing.T) {
	e := startEventsPlatform(t)
	waitEnsembleReady(t, e)
	sets := hashSets(t, e, "ml")

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
		checkWrittenOnce(t, e, sets, "ml", id, syms)
		var j jobs.Job
		if resp, b := e.call(t, "GET", "/api/v1/execution/jobs/"+id, e.key, ""); resp.StatusCode != 200 || json.Unmarshal(b, &j) != nil || j.ResultRef != "ml:batch:"+id+":results" {
			t.Fatalf("GET job: %d %s", resp.StatusCode, b)
		}
	}
}

// TestBatchWorkerCrashMidJob kills ml-batch-worker (SIGKILL) once in each of -crash-jobs
// 100-symbol jobs, when the job's progress reaches a point drawn in [10,90]: the Broker
// redelivers the request, a new process resumes the job once the dead one's lease
// (EVENT_LEASE) lapses, and every symbol's result is written exactly once, as Redis counts
// the writes. A job that ended before the kill landed (the dead worker had written all 100
// results) is not counted as killed and is run again with fresh symbols, up to twice; the
// test fails unless every one of the N jobs was really killed mid-job.
func TestBatchWorkerCrashMidJob(t *testing.T) {
	e := startEventsPlatform(t, "EVENT_LEASE=2s", "BATCH_CHUNK=5", "BATCH_PARALLEL=1")
	waitEnsembleReady(t, e)
	sets := hashSets(t, e, "ml")
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := jobs.NewStore(rdb, jobs.Options{WatchResync: time.Second})
	res := batch.NewResults(rdb, store.NewKeys("ml"), 0)

	var (
		killed, missed, runs int
		lost, doubled        int
		repeated, repJobs    int
		atKill               []int64
		seq                  int
	)
	begin, cold0 := time.Now(), len(e.p.ColdStarts("ml-batch-worker"))
	for i := range *crashJobs {
		for try := 0; ; try++ {
			syms := symbolList(3000+seq*100, 100) // fresh symbols: no cache hit shortens the job
			seq++
			runs++
			killAt := int64(10 + rand.IntN(81)) // [10,90]
			id := submit(t, e, "/api/v1/ml/batch-predict", map[string]any{"symbols": syms})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			updates, err := st.Watch(ctx, gateway.DevKeyTenant, id)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			var (
				last     jobs.Job
				tried    bool
				doneAt   int64     = -1 // results the killed worker had written
				prevAt   time.Time      // when progress last moved
				prevDone int64
			)
			for j := range updates {
				last = j
				now := time.Now()
				if !tried && j.Status == jobs.StatusRunning && j.Done >= killAt {
					tried = true
					// Progress moves at the end of a chunk: wait a random part of the last
					// chunk's duration so that the kill lands inside the next chunk's work,
					// not always right after a commit.
					if !prevAt.IsZero() {
						time.Sleep(rand.N(now.Sub(prevAt)))
					}
					// Kill returns once the process is gone: what is written now is what
					// the dead worker wrote.
					if err := e.p.Kill("ml-batch-worker"); err != nil {
						t.Logf("job %d (%s): kill at %d/100 failed: %v", i, id, j.Done, err)
					} else if doneAt, err = res.Count(ctx, id); err != nil {
						t.Fatal(err)
					}
				}
				if j.Done != prevDone {
					prevAt, prevDone = now, j.Done
				}
			}
			cancel()
			if last.Status != jobs.StatusSucceeded || last.Done != 100 {
				t.Fatalf("job %d (%s) after the kill: %+v", i, id, last)
			}
			tl := checkWrittenOnce(t, e, sets, "ml", id, syms)
			lost += len(tl.lost)
			doubled += tl.doubled
			repeated += tl.repeated
			if tl.repeated > 0 {
				repJobs++
			}
			if doneAt >= 0 && doneAt < 100 {
				killed++
				atKill = append(atKill, doneAt)
				t.Logf("job %d: drew %d, killed ml-batch-worker with %d/100 written; resumed, %d symbols' work repeated, %d work starts for 100 symbols",
					i, killAt, doneAt, tl.repeated, tl.attempts)
				break
			}
			missed++
			t.Logf("job %d (%s): not killed mid-job (drew %d, written at the kill %d; -1: no kill); run again with fresh symbols", i, id, killAt, doneAt)
			if try == 2 {
				t.Fatalf("job %d: three runs ended before their worker could be killed", i)
			}
		}
	}
	took := time.Since(begin)
	t.Logf("crash test: N=%d jobs, killed mid-job %d/%d (written at the kill: %v; %d more runs ended before the kill and were re-run), "+
		"lost %d, doubled %d, repeated work %d symbols in %d jobs (re-predicted, not re-written), %d cold starts of ml-batch-worker, %v (%v per run)",
		*crashJobs, killed, *crashJobs, atKill, missed, lost, doubled, repeated, repJobs,
		len(e.p.ColdStarts("ml-batch-worker"))-cold0, took.Round(time.Millisecond), (took / time.Duration(max(runs, 1))).Round(time.Millisecond))
	if killed != *crashJobs {
		t.Fatalf("%d of %d jobs were killed mid-job", killed, *crashJobs)
	}
}

// TestPoisonEventIsDeadLetteredAndNothingStalls publishes a malformed batch request to the
// Broker next to a good batch fetch: the fetch completes while the poison event goes to the
// dead-letter sink with its original id and the subscriber's error.
func TestPoisonEventIsDeadLetteredAndNothingStalls(t *testing.T) {
	e := startEventsPlatform(t)
	sets := hashSets(t, e, "data")
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
	checkWrittenOnce(t, e, sets, "data", id, syms)
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

	var found *deadLetter
	waitFor(t, "the poison event in the dead letters", func() bool {
		for _, l := range e.deadLetters(t) {
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

// deadLetter is what the tests read of GET /api/v1/events/dead-letters.
type deadLetter struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	Dest    string `json:"error_dest"`
	Code    int    `json:"error_code"`
}

// deadLetters lists the parked events through the gateway.
func (e env) deadLetters(t *testing.T) []deadLetter {
	t.Helper()
	var list struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	resp, b := e.call(t, "GET", "/api/v1/events/dead-letters", e.key, "")
	if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil {
		t.Fatalf("dead letters: %d %s", resp.StatusCode, b)
	}
	return list.DeadLetters
}

// TestPoisonAndGoodEventsOnTheSameTrigger: poison ml.batch.requested events published
// before and after a good one, all for the same Trigger and subscriber (ml-batch-worker):
// the good job completes with every result written once, and each poison event reaches the
// dead-letter sink with its own id, the subscriber's 400 and the subscriber as destination.
func TestPoisonAndGoodEventsOnTheSameTrigger(t *testing.T) {
	e := startEventsPlatform(t)
	waitEnsembleReady(t, e)
	sets := hashSets(t, e, "ml")
	pub, err := events.NewPublisher(e.p.BrokerURL())
	if err != nil {
		t.Fatal(err)
	}
	var poison []string
	publishPoison := func(n int) {
		for range n {
			id := fmt.Sprintf("poison-same-trigger-%d-%d", len(poison), time.Now().UnixNano())
			if _, err := pub.PublishID(context.Background(), id, events.TypeMLBatchRequested, events.SourceMLBatchPredict, "",
				map[string]any{"job_id": "", "symbols": "not a list"}); err != nil {
				t.Fatal(err)
			}
			poison = append(poison, id)
		}
	}
	publishPoison(3)
	syms := symbolList(6000, 20)
	id := submit(t, e, "/api/v1/ml/batch-predict", map[string]any{"symbols": syms})
	publishPoison(3)
	last, _ := streamUntilEnd(t, e, id)
	if last.Status != jobs.StatusSucceeded || last.Done != 20 {
		t.Fatalf("ml job behind poison events on its trigger: %+v", last)
	}
	checkWrittenOnce(t, e, sets, "ml", id, syms)

	got := map[string]deadLetter{}
	waitFor(t, "every poison event in the dead letters", func() bool {
		for _, l := range e.deadLetters(t) {
			got[l.EventID] = l
		}
		for _, p := range poison {
			if _, ok := got[p]; !ok {
				return false
			}
		}
		return true
	})
	for _, p := range poison {
		if l := got[p]; l.Code != 400 || !strings.HasPrefix(l.Dest, "http://ml-batch-worker.") {
			t.Errorf("dead letter %+v", l)
		}
	}
	if len(got) != len(poison) {
		t.Errorf("%d dead letters, want the %d poison events only: %v", len(got), len(poison), got)
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
