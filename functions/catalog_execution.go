package functions

import "time"

// traders may place orders.
var traders = []string{RoleTrader, RoleAdmin}

func executionFunctions() []Function {
	return []Function{
		{
			Name:        "execution-trade",
			Kind:        KindFunction,
			Description: "Paper orders with an Idempotency-Key: TSE lot, tick and price-limit rules, risk checks, simulated fills, event-sourced ledger",
			// Not idempotent for the gateway: a retried POST is the client's to make, with its key.
			Routes:  []Route{{Method: "POST", Path: "/api/v1/execution/trade", Roles: traders}},
			Scaling: defaultScaling,
			// IDEMPOTENCY_LOCK_TTL is this timeout plus a margin: a crashed request's lock
			// must outlive any live attempt.
			Timeout: 30 * time.Second,
			Env: map[string]string{
				"DATA_PROVIDER":        "synthetic",
				"IDEMPOTENCY_LOCK_TTL": "40s",
				"PAPER_INITIAL_CASH":   "10000000",
				"PAPER_SLIPPAGE_BPS":   "5",
				"PAPER_FEE_BPS":        "10",
			},
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "exec",
			RedisKeys: redisKeys([]string{redisLedger, redisIdempotency}, redisMarketCache("exec")),
			Publishes: []string{"com.daytrade.execution.order.filled"},
		},
		{
			Name:        "execution-positions",
			Kind:        KindFunction,
			Description: "The paper account: cash, positions and P&L projected from the order ledger, marked to market at read time",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/execution/positions", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     10 * time.Second,
			// Marks come from the provider execution-trade prices orders with, through the
			// same "exec" market cache; a symbol not quoted within MARK_TIMEOUT (default 2s)
			// is shown at its last fill price.
			Env:       map[string]string{"DATA_PROVIDER": "synthetic"},
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "exec",
			RedisKeys: redisKeys([]string{redisLedger}, redisMarketCache("exec")),
		},
		{
			Name:        "execution-orders",
			Kind:        KindFunction,
			Description: "Paper orders, newest first, projected from the order ledger",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/execution/orders", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     10 * time.Second,
			KeyPrefix:   "exec",
			RedisKeys:   []string{redisLedger},
		},
		{
			Name:        "execution-fills",
			Kind:        KindFunction,
			Description: "On every execution tick: fills resting limit orders a later bar crossed (risk re-checked, once per order), expires day orders at the close, relays unpublished fills from the ledger's outbox",
			// The PingSource's ticks reach it through the second Trigger the generator adds for
			// every subscriber of the tick type. A sweep is idempotent, so retries are harmless.
			Events:  []Subscription{{Type: "com.daytrade.execution.tick"}},
			Scaling: Scaling{MinScale: 0, MaxScale: 2, Concurrency: 4, Target: 2, IdleWindow: 5 * time.Minute},
			Timeout: 2 * time.Minute,
			// The costs and limits must be execution-trade's: both decide fills.
			Env: map[string]string{
				"DATA_PROVIDER":      "synthetic",
				"PAPER_SLIPPAGE_BPS": "5",
				"PAPER_FEE_BPS":      "10",
				"OUTBOX_GRACE":       "30s",
				"EVENT_LEASE":        "90s",
			},
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "exec",
			RedisKeys: redisKeys([]string{redisLedger, redisDedup("exec")}, redisMarketCache("exec")),
			Publishes: []string{"com.daytrade.execution.order.filled"},
		},
		{
			Name:        "execution-schedule",
			Kind:        KindFunction,
			Description: "Scheduled workflows: create (cron in JST or market_hours), list and cancel a tenant's schedules",
			Routes: []Route{
				{Method: "POST", Path: "/api/v1/execution/schedule", Roles: traders},
				{Method: "GET", Path: "/api/v1/execution/schedule", Roles: readers, Idempotent: true},
				{Method: "DELETE", Path: "/api/v1/execution/schedule/{id}", Roles: traders, Idempotent: true},
			},
			Scaling:   defaultScaling,
			Timeout:   10 * time.Second,
			Env:       map[string]string{"MAX_SCHEDULES_PER_TENANT": "50"},
			KeyPrefix: "exec",
			RedisKeys: redisKeys(redisSchedules, []string{redisWorkflow, redisJobs}),
		},
		{
			Name:        "execution-scheduler",
			Kind:        KindFunction,
			Description: "Starts due scheduled workflows on every execution tick, once per (schedule, due time), and runs them as sagas",
			// The PingSource's dev.knative.sources.ping ticks reach it through a second Trigger
			// the manifest generator adds for every subscriber of the tick type.
			Events:  []Subscription{{Type: "com.daytrade.execution.tick"}},
			Scaling: Scaling{MinScale: 0, MaxScale: 3, Concurrency: 10, Target: 8, IdleWindow: 5 * time.Minute},
			// A tick executes the due runs before it is acknowledged: WORKFLOW_RUN_LEASE <
			// EVENT_LEASE < this timeout.
			Timeout: 6 * time.Minute,
			Env: map[string]string{
				"WORKFLOW_CALL_TIMEOUT":           "30s",
				"WORKFLOW_RUN_LEASE":              "4m",
				"EVENT_LEASE":                     "5m",
				"SCHEDULER_CATCH_UP":              "15m",
				"SCHEDULER_MAX_RUNS_PER_SCHEDULE": "5",
				"SCHEDULER_CONCURRENCY":           "8",
			},
			KeyPrefix: "exec",
			RedisKeys: redisKeys(redisSchedules, []string{"exec:sched-fire:*", "exec:sched-pending", redisWorkflow, redisDedup("exec"), redisJobs}),
			Calls:     []string{"symbols-select", "data-stocks", "ml-predict", "ml-batch-predict", "execution-jobs", "execution-trade", "notifications-send"},
			// It signs its calls for the schedule's tenant, as the gateway does (optional:
			// without it the calls carry only X-Tenant).
			Secrets: []string{"INTERNAL_TOKEN_KEY"},
		},
	}
}
