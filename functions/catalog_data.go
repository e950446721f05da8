package functions

import "time"

func dataFunctions() []Function {
	return []Function{
		{
			Name:        "data-stocks",
			Kind:        KindFunction,
			Description: "OHLCV bars for one symbol with optional indicators, cached in Redis",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     30 * time.Second,
			Env:         map[string]string{"DATA_PROVIDER": "synthetic"},
			Secrets:     []string{"JQUANTS_API_KEY"},
			KeyPrefix:   "data",
			RedisKeys:   redisMarketCache("data"),
		},
		{
			Name:        "data-cache",
			Kind:        KindFunction,
			Description: "Market-data cache statistics and invalidation",
			Routes: []Route{
				{Method: "GET", Path: "/api/v1/data/cache", Roles: readers, Idempotent: true},
				{Method: "DELETE", Path: "/api/v1/data/cache", Roles: admins, Idempotent: true},
			},
			Scaling:   defaultScaling,
			Timeout:   30 * time.Second,
			KeyPrefix: "data",
			RedisKeys: redisMarketCache("data"),
		},
	}
}
