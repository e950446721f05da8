package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/workflow"
)

// use is one thing a function does in Redis, run through the same package code (and key
// space) as its main.go, so a key the code builds but the catalog's RedisKeys lack fails.
type use func(ctx context.Context, t *testing.T, rdb *redis.Client) error

func useJobs(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	js := jobs.NewStore(rdb, jobs.Options{})
	j, err := js.Create(ctx, jobs.Job{Kind: "acl.test", Tenant: "t1", Total: 2})
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch, err := js.Watch(wctx, "t1", j.ID) // SUBSCRIBE jobs:changes:<id>
	if err != nil {
		return err
	}
	if _, err := js.Start(ctx, "t1", j.ID); err != nil { // a Lua script that PUBLISHes
		return err
	}
	if _, err := js.Progress(ctx, "t1", j.ID, 1, 2); err != nil {
		return err
	}
	<-ch // the job as it was when watched
	_, err = js.Get(ctx, "t1", j.ID)
	return err
}

func useLedger(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	l := ledger.New(rdb, store.NewKeys("exec"))
	amount := decimal.NewFromInt(1000)
	tenant := testID(t)
	if _, err := l.Append(ctx, tenant, "deposit-1", ledger.Start, ledger.Event{Type: ledger.CashDeposited, At: time.Now(), Amount: &amount}); err != nil {
		return err
	}
	if _, err := l.Project(ctx, tenant); err != nil {
		return err
	}
	_, err := l.Tenants(ctx)
	return err
}

func useIdempotency(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	s := idempotency.NewStore(rdb, store.NewKeys("exec"), idempotency.Options{})
	b, err := s.Begin(ctx, "t1", "key-"+testID(t), "fp")
	if err != nil {
		return err
	}
	return s.Complete(ctx, b.Lease, idempotency.Response{Status: http.StatusCreated, Body: []byte("{}")})
}

func useMarketCache(space string) use {
	return func(ctx context.Context, t *testing.T, rdb *redis.Client) error {
		bars := market.ProviderFunc(func(context.Context, market.Query) ([]market.Bar, error) {
			return []market.Bar{{Time: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), Open: 1, High: 2, Low: 1, Close: 2, AdjClose: 2, Volume: 10}}, nil
		})
		c := marketcache.New(rdb, store.NewKeys(space), bars, "test")
		q := market.Query{Symbol: "7203.T", Period: market.DefaultPeriod, Interval: market.DefaultInterval}
		for range 2 { // a miss that writes, then a hit
			if _, _, err := c.Bars(ctx, q); err != nil {
				return err
			}
		}
		if _, err := c.Stats(ctx); err != nil {
			return err
		}
		_, err := c.Clear(ctx, "7203*")
		return err
	}
}

func useRegistry(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	r := registry.New(rdb, store.NewKeys("ml"))
	if _, err := r.List(ctx); err != nil {
		return err
	}
	if _, err := r.Claim(ctx, "acl-test", time.Minute); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err := r.Subscribe(sctx) // SUBSCRIBE ml:registry:events
	return err
}

func useTracker(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	tr := registry.NewTracker(rdb, store.NewKeys("ml"), 10)
	bar := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	if _, err := tr.Record(ctx, registry.Prediction{Symbol: "7203.T", Version: "v1", BarTime: bar, Up: true, Probability: 0.6, PredictedAt: bar}); err != nil {
		return err
	}
	next := []market.Bar{{Time: bar, Close: 1}, {Time: bar.AddDate(0, 0, 1), Close: 2}}
	if _, err := tr.Score(ctx, "7203.T", next, len(next)); err != nil {
		return err
	}
	_, err := tr.Rolling(ctx, 10)
	return err
}

// useReceiver runs one CloudEvent through events.Receiver: its dedup marks live in space.
func useReceiver(space string) use {
	return func(ctx context.Context, t *testing.T, rdb *redis.Client) error {
		recv, err := events.NewReceiver(rdb, store.NewKeys(space), events.ReceiverOptions{})
		if err != nil {
			return err
		}
		recv.HandleDefault(func(context.Context, cloudevents.Event) error { return nil })
		for range 2 { // the second delivery is a duplicate: read the mark back
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", strings.NewReader(`{}`))
			req.Header.Set("ce-specversion", "1.0")
			req.Header.Set("ce-id", "acl-"+space)
			req.Header.Set("ce-source", "/acl-test")
			req.Header.Set("ce-type", "com.daytrade.acl.test.done")
			req.Header.Set("content-type", "application/json")
			rec := httptest.NewRecorder()
			recv.HTTPHandler().ServeHTTP(rec, req)
			if rec.Code >= 300 {
				return errors.New("receiver answered " + rec.Result().Status + ": " + rec.Body.String())
			}
		}
		return nil
	}
}

func useBatchResults(space string) use {
	return func(ctx context.Context, t *testing.T, rdb *redis.Client) error {
		r := batch.NewResults(rdb, store.NewKeys(space), time.Hour)
		if _, err := r.Put(ctx, "job-1", batch.Item{Symbol: "7203.T", OK: true, Value: json.RawMessage(`1`)}); err != nil {
			return err
		}
		_, err := r.All(ctx, "job-1")
		return err
	}
}

func useSchedules(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	s := schedule.NewStore(rdb, store.NewKeys("exec"), 10, nil)
	sc, err := s.Create(ctx, schedule.Schedule{ID: schedule.NewID(), Tenant: "t1", Workflow: "acl", Expr: "*/5 * * * *"})
	if err != nil {
		return err
	}
	if _, err := s.Active(ctx); err != nil {
		return err
	}
	if _, err := s.List(ctx, "t1"); err != nil {
		return err
	}
	_, err = s.Cancel(ctx, "t1", sc.ID)
	return err
}

func useWorkflow(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	keys := store.NewKeys("exec")
	r := workflow.NewRunner(rdb, keys, jobs.NewStore(rdb, jobs.Options{}), workflow.Options{})
	wf := workflow.Workflow{Name: "acl", Steps: []workflow.Step{{Name: "save", Do: func(ctx context.Context, run *workflow.Run) error {
		return run.Save(ctx, "x", 1)
	}}}}
	id := "run-" + testID(t)
	if _, err := r.Create(ctx, wf, id, "t1", nil); err != nil {
		return err
	}
	j, err := r.Execute(ctx, wf, "t1", id)
	if err == nil && j.Status != jobs.StatusSucceeded {
		err = errors.New("workflow run ended " + string(j.Status) + ": " + j.Error)
	}
	return err
}

func useNotify(write bool) use {
	return func(ctx context.Context, t *testing.T, rdb *redis.Client) error {
		s := notify.NewStore(rdb, store.NewKeys("notif"), time.Hour)
		id := "n-" + testID(t)
		if write {
			n := notify.Notification{ID: id, Type: "alert", Message: "m", Priority: notify.PriorityNormal,
				Targets: []notify.Target{{Channel: "log"}}, CreatedAt: time.Now()}
			if err := s.Create(ctx, n); err != nil {
				return err
			}
			ok, token, err := s.Acquire(ctx, id, 0, time.Minute)
			if err != nil || !ok {
				return errors.Join(err, errors.New("channel lock not acquired"))
			}
			s.Release(ctx, id, 0, token)
		}
		_, err := s.Get(ctx, id)
		if !write && errors.Is(err, notify.ErrNotFound) {
			return nil // a read of a missing record is still a permitted read
		}
		return err
	}
}

// testID is the running (sub)test's name as an id: tenants and run ids differ per function.
func testID(t *testing.T) string { return strings.ReplaceAll(t.Name(), "/", "-") }

func useAPIKeys(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	ks := auth.NewKeyStore(rdb, store.NewKeys("gw"))
	key, _, err := ks.Create(ctx, auth.KeySpec{Owner: "acl", Tenant: "t1", Roles: []string{"viewer"}})
	if err != nil {
		return err
	}
	_, err = ks.Authenticate(ctx, key)
	return err
}

// useRateLimit is the gateway's GCRA cell: redis_rate prefixes its key with "rate:".
func useRateLimit(ctx context.Context, t *testing.T, rdb *redis.Client) error {
	_, err := redis_rate.NewLimiter(rdb).Allow(ctx, store.NewKeys("gw").Key("rl", "route", "caller"), redis_rate.PerSecond(10))
	return err
}

// useCommands runs raw commands on keys that a function's own package builds (stores in a
// main package this test cannot import): the key shapes are those of the named files.
func useCommands(cmds ...[]any) use {
	return func(ctx context.Context, t *testing.T, rdb *redis.Client) error {
		for _, c := range cmds {
			if err := rdb.Do(ctx, c...).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		return nil
	}
}

func cmd(args ...any) []any { return args }

// useAlert is shared/ml/alert's per-period claim (ml-predict and ml-batch-worker).
var useAlert = useCommands(
	cmd("set", "ml:alert:accuracy:2026-01-05", "publishing", "nx", "ex", 60),
	cmd("get", "ml:alert:accuracy:2026-01-05"),
	cmd("set", "ml:alert:accuracy:2026-01-05", "published", "ex", 60),
	cmd("del", "ml:alert:accuracy:2026-01-05"),
)

// uses is what each catalog entry does in Redis. A catalog entry missing here fails the test:
// its ACL user must be proven against its code.
var uses = map[string][]use{
	"gateway": {useAPIKeys, useRateLimit, useCommands(
		cmd("set", "gw:cache:route:t1:abc", "x", "ex", 60), // gateway/cache.go
		cmd("incr", "gw:quota:route:caller:2026-01-05"),    // gateway/ratelimit.go
		cmd("decr", "gw:quota:route:caller:2026-01"),       // gateway/ratelimit.go: give-back between quotas
		cmd("get", "gw:devkey"),                            // gateway/devkey.go
	)},
	"data-stocks":       {useMarketCache("data")},
	"data-cache":        {useMarketCache("data")},
	"data-batch-fetch":  {useJobs},
	"data-batch-worker": {useReceiver("data"), useBatchResults("data"), useJobs, useMarketCache("data")},
	"dead-letter": {useCommands( // functions/dead-letter/store.go
		cmd("eval", "redis.call('HSET', KEYS[1], 'id', ARGV[1]); redis.call('ZADD', KEYS[2], 1, ARGV[1]); return 1", 2, "events:dl:abc", "events:dl:index", "abc"),
		cmd("zrevrange", "events:dl:index", 0, 10),
	)},
	"ensemble":            {useRegistry},
	"execution-jobs":      {useJobs},
	"execution-orders":    {useLedger},
	"execution-positions": {useLedger},
	"execution-schedule":  {useSchedules, useWorkflow, useJobs},
	"execution-scheduler": {useReceiver("exec"), useSchedules, useWorkflow, useJobs, useCommands( // functions/execution-scheduler/scheduler.go
		cmd("eval", "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 60) then redis.call('ZADD', KEYS[2], 1, ARGV[1]) return 1 end return 0", 2, "exec:sched-fire:sch_1:1767571200", "exec:sched-pending", "run-1"),
		cmd("zrange", "exec:sched-pending", 0, 10),
		cmd("zrem", "exec:sched-pending", "run-1"),
	)},
	"execution-fills":  {useLedger, useReceiver("exec"), useMarketCache("exec")},
	"execution-trade":  {useLedger, useIdempotency, useMarketCache("exec")},
	"ml-batch-predict": {useJobs},
	"ml-batch-worker":  {useReceiver("ml"), useBatchResults("ml"), useTracker, useJobs, useMarketCache("data"), useAlert},

	"ml-models":                {useRegistry, useTracker},
	"ml-predict":               {useTracker, useMarketCache("data"), useAlert},
	"ml-train":                 {useRegistry, useReceiver("ml")},
	"notifications-send":       {useNotify(true)},
	"notifications-dispatcher": {useNotify(true), useReceiver("notif")},
	"notifications-status":     {useNotify(false)},
	"symbols-select":           {useMarketCache("sym")},
	"symbols-screen": {useMarketCache("sym"), useCommands( // functions/symbols-screen/cursor.go
		cmd("set", "sym:screen:cursor-key", "k", "nx"), cmd("get", "sym:screen:cursor-key"),
	)},
	"symbols-recommend": {useMarketCache("sym")},
}

// TestRedisACLPerFunction starts a real redis-server with the ACL generated from the real
// catalog and, as each function's own user, runs that function's store code (allowed), then
// touches every other function's key and channel patterns it was not given (NOPERM).
func TestRedisACLPerFunction(t *testing.T) {
	fs := functions.Catalog()
	files := mustGenerate(t, fs)
	acl, passwords := aclFile(t, files)
	addr := startRedisWithACL(t, acl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := client(t, addr, RedisAdminUser, passwords[RedisPasswordVar(RedisAdminUser)])
	waitRedis(t, ctx, admin)

	var all []string
	for _, f := range fs {
		all = append(all, f.RedisPatterns()...)
	}
	slices.Sort(all)
	all = slices.Compact(all)

	for _, f := range fs {
		t.Run(f.Name, func(t *testing.T) {
			c := client(t, addr, f.Name, passwords[RedisPasswordVar(f.Name)])
			us, ok := uses[f.Name]
			if !ok {
				t.Fatalf("no Redis uses for %s in acl_test.go: add what its code does, so its RedisKeys are proven", f.Name)
			}
			for i, u := range us {
				if err := u(ctx, t, c); err != nil {
					t.Errorf("use %d as user %s: %v", i, f.Name, err)
				}
			}
			own := f.RedisPatterns()
			denied := 0
			for _, p := range all {
				key := strings.ReplaceAll(p, "*", "acl-probe")
				if matchesAny(own, key) {
					continue
				}
				denied++
				for name, err := range map[string]error{
					"SET":     c.Set(ctx, key, "v", time.Minute).Err(),
					"GET":     c.Get(ctx, key).Err(),
					"EVAL":    c.Eval(ctx, "return redis.call('EXISTS', KEYS[1])", []string{key}).Err(),
					"PUBLISH": c.Publish(ctx, key, "x").Err(),
				} {
					if err == nil || !strings.Contains(err.Error(), "NOPERM") {
						t.Errorf("%s %s (another function's %s): %v, want NOPERM", name, key, p, err)
					}
				}
			}
			if denied == 0 && len(fs) > 1 {
				t.Errorf("%s may touch every pattern of the catalog", f.Name)
			}
			for name, err := range map[string]error{
				"KEYS":     c.Keys(ctx, "*").Err(),
				"FLUSHALL": c.FlushAll(ctx).Err(),
				"CONFIG":   c.ConfigGet(ctx, "*").Err(),
			} {
				if err == nil || !strings.Contains(err.Error(), "NOPERM") {
					t.Errorf("%s: %v, want NOPERM", name, err)
				}
			}
		})
	}
}

// matchesAny reports whether key matches one of the ACL globs (ours use only a trailing *).
func matchesAny(patterns []string, key string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, key); ok {
			return true
		}
	}
	return false
}

func waitRedis(t *testing.T, ctx context.Context, c *redis.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with the generated ACL did not come up: %v", c.Ping(ctx).Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
