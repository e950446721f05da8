// Command chaos runs fault scenarios against the local platform (real processes: the
// gateway, the activator, functions started on demand, the Broker, a real redis-server) and
// writes docs/reliability.md with a JSON twin: one row per scenario with its load, the fault,
// how long it lasted, the requests sent, the errors by status and by who answered them, lost
// or duplicated effects, and the recovery time.
//
//  1. soak: N paper trades through the gateway, each retried by its client with the same
//     Idempotency-Key on a timeout, 409, 429 or 5xx, while execution-trade is SIGKILLed and
//     redis-server is SIGKILLed for 1-3 s at random times; then the tenants' ledger streams
//     are reconciled with what the clients were told.
//  2. redis-server SIGKILLed for 10 s under a fixed-rate load on a fail-open route, with
//     trades (a fail-closed route) alongside.
//  3. Redis slowed by 500 ms (Toxiproxy's Go library between the platform and Redis).
//  4. a function answering 503 to everything: breaker, half-open probes, recovery.
//  5. a function failing every second request: retry amplification against the budget.
//  6. a function that hangs: timeouts, breaker, and another route's p99.
//  7. a batch worker SIGKILLed mid-job: the job completes, each symbol written once.
//
// Load is vegeta as a library at fixed rates (open model: no coordinated omission).
//
//	go run ./tests/chaos -out docs/reliability.md    # make chaos
//	go run ./tests/chaos -smoke                      # seconds; what `make test` runs
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

type options struct {
	out, moduleDir, only string
	smoke                bool
	soakN, soakRate      int
	maxAttempts          int
	faultEvery           time.Duration
	clientTimeout        time.Duration
	rate, lowRate        int
	tradeRate            int
	slowRate, faultRate  int
	hangRate             int
	hangTimeout          time.Duration
	before, downFor      time.Duration
	after, warmup        time.Duration
	jobs                 int
	note                 string
}

func defaultOptions() options {
	return options{
		moduleDir: ".", soakN: 10000, soakRate: 25, maxAttempts: 200, faultEvery: 10 * time.Second,
		clientTimeout: 10 * time.Second, rate: 2000, lowRate: 500, tradeRate: 20, slowRate: 200, faultRate: 100,
		hangRate: 50, hangTimeout: 2 * time.Second, before: 5 * time.Second, downFor: 10 * time.Second,
		after: 10 * time.Second, warmup: 2 * time.Second, jobs: 5,
	}
}

// smokeOptions shrink every scenario to seconds: the harness runs end to end in `make test`
// so that it cannot rot, and the invariants (nothing lost, nothing doubled) are still checked.
func (o options) smokeOptions() options {
	o.soakN, o.soakRate, o.faultEvery = 60, 30, time.Second
	o.rate, o.lowRate, o.tradeRate, o.slowRate, o.faultRate, o.hangRate = 100, 0, 10, 50, 50, 20
	o.before, o.downFor, o.after, o.warmup = time.Second, 2*time.Second, 2*time.Second, 300*time.Millisecond
	o.jobs = 1
	return o
}

func main() {
	o := defaultOptions()
	flag.StringVar(&o.out, "out", "", "write the Markdown report here (and a .json beside it); stdout when empty")
	flag.StringVar(&o.moduleDir, "C", o.moduleDir, "module root (binaries are built from it)")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios: soak,rediskill,slowredis,breaker,flaky,hang,midjob (empty = all)")
	flag.BoolVar(&o.smoke, "smoke", false, "tiny counts and seconds-long phases (the harness's own test)")
	flag.IntVar(&o.soakN, "soak-n", o.soakN, "paper trades in the soak")
	flag.IntVar(&o.soakRate, "soak-rate", o.soakRate, "new trades per second in the soak")
	flag.IntVar(&o.maxAttempts, "max-attempts", o.maxAttempts, "client attempts per trade before it gives up")
	flag.DurationVar(&o.faultEvery, "fault-every", o.faultEvery, "mean time between soak faults (uniform in [½, 1½]×)")
	flag.DurationVar(&o.clientTimeout, "client-timeout", o.clientTimeout, "soak client timeout per attempt")
	flag.IntVar(&o.rate, "rate", o.rate, "requests/s on the fail-open route while Redis is killed")
	flag.IntVar(&o.lowRate, "rate-low", o.lowRate, "the same at a rate this machine sustains (second run; 0 skips it)")
	flag.IntVar(&o.tradeRate, "trade-rate", o.tradeRate, "trades/s alongside the Redis faults")
	flag.IntVar(&o.slowRate, "slow-rate", o.slowRate, "requests/s on the data route with slow Redis and beside the hanging function")
	flag.IntVar(&o.faultRate, "fault-rate", o.faultRate, "requests/s on the failing function (503 and 50%)")
	flag.IntVar(&o.hangRate, "hang-rate", o.hangRate, "requests/s on the hanging function")
	flag.DurationVar(&o.hangTimeout, "hang-timeout", o.hangTimeout, "route timeout of the hanging function (routes file)")
	flag.DurationVar(&o.before, "before", o.before, "load before each fault")
	flag.DurationVar(&o.downFor, "fault-for", o.downFor, "how long each fault lasts")
	flag.DurationVar(&o.after, "after", o.after, "load after each fault is healed")
	flag.DurationVar(&o.warmup, "warmup", o.warmup, "warm-up load before each scenario (not counted)")
	flag.IntVar(&o.jobs, "jobs", o.jobs, "batch jobs whose worker is killed mid-job")
	flag.StringVar(&o.note, "note", os.Getenv("CHAOS_NOTE"), "a line for the report's header (e.g. what else ran on the machine)")
	flag.Parse()
	if o.smoke {
		o = o.smokeOptions()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The in-process Broker's Redis client logs every failed dial while Redis is killed on
	// purpose; the scenarios measure that outage, the log lines add nothing.
	redis.SetLogger(quietLogger{})
	rep, err := run(ctx, o)
	if err == nil {
		err = write(o.out, rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// runEnv is what the scenarios share.
type runEnv struct {
	o         options
	dir       string
	moduleDir string
	bins      bins
	extraEnv  []string
}

var scenarioNames = []string{"soak", "rediskill", "slowredis", "breaker", "flaky", "hang", "midjob"}

func run(ctx context.Context, o options) (*Report, error) {
	dir, err := os.MkdirTemp("", "chaos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	mod, err := filepath.Abs(o.moduleDir)
	if err != nil {
		return nil, err
	}
	r := &runEnv{o: o, dir: dir, moduleDir: mod}
	if o.smoke {
		// A trade whose process is killed mid-request holds its key's in-flight lock until
		// the lock expires (40 s by default); the smoke must finish in seconds.
		r.extraEnv = append(r.extraEnv, "IDEMPOTENCY_LOCK_TTL=3s")
	}
	fmt.Fprintln(os.Stderr, "chaos: building the functions the scenarios use, and faultfn")
	if r.bins, err = build(ctx, mod, dir, os.Stderr); err != nil {
		return nil, err
	}
	args := strings.Join(os.Args[1:], " ")
	rep := &Report{Date: time.Now().UTC(), Commit: gitCommit(mod), Machine: machine(), Smoke: o.smoke,
		Command: strings.TrimSpace("go run ./tests/chaos " + args), Note: o.note, Tools: tools()}
	rep.LoadAvg[0] = loadAvg()
	want := func(s string) bool { return o.only == "" || slices.Contains(strings.Split(o.only, ","), s) }
	for _, name := range scenarioNames {
		if !want(name) {
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fmt.Fprintf(os.Stderr, "chaos: scenario %s\n", name)
		t0 := time.Now()
		var err error
		switch name {
		case "soak":
			rep.Soak, err = r.soak(ctx)
		case "rediskill":
			for _, rate := range []int{r.o.rate, r.o.lowRate} {
				if rate <= 0 {
					continue
				}
				var k *RedisKill
				if k, err = r.redisKill(ctx, rate); err != nil {
					break
				}
				rep.RedisKill = append(rep.RedisKill, k)
			}
		case "slowredis":
			rep.SlowRedis, err = r.slowRedis(ctx)
		case "breaker":
			rep.Breaker, err = r.breaker(ctx)
		case "flaky":
			rep.Flaky, err = r.flaky(ctx)
		case "hang":
			rep.Hang, err = r.hang(ctx)
		case "midjob":
			rep.MidJob, err = r.midJob(ctx)
		}
		if err != nil {
			// One broken scenario must not cost the others' numbers; the report says so.
			fmt.Fprintf(os.Stderr, "chaos: %s failed: %v\n", name, err)
			rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", name, err))
		}
		fmt.Fprintf(os.Stderr, "chaos: %s took %.1fs\n", name, time.Since(t0).Seconds())
	}
	rep.LoadAvg[1] = loadAvg()
	rep.Rows = rows(rep, o)
	return rep, nil
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
