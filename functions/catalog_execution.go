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
			Publishes: []string{"com.daytrade.execution.order.filled"},
		},
		{
			Name:        "execution-positions",
			Kind:        KindFunction,
			Description: "The paper account: cash, positions and P&L projected from the order ledger",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/execution/positions", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     10 * time.Second,
			KeyPrefix:   "exec",
		},
		{
			Name:        "execution-orders",
			Kind:        KindFunction,
			Description: "Paper orders, newest first, projected from the order ledger",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/execution/orders", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     10 * time.Second,
			KeyPrefix:   "exec",
		},
	}
}
