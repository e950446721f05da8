package functions

import "time"

// symbolEnv is what the symbol functions share: the market-data provider and the universe.
func symbolEnv() map[string]string {
	return map[string]string{"DATA_PROVIDER": "synthetic", "SYMBOLS_UNIVERSE": "starter", "SYMBOLS_CONCURRENCY": "16"}
}

func symbolFunctions() []Function {
	return []Function{
		{
			Name:        "symbols-select",
			Kind:        KindFunction,
			Description: "Best symbols of the universe for a trading style, scored from market data with every score explained",
			// A pure read: retrying it changes nothing.
			Routes:    []Route{{Method: "POST", Path: "/api/v1/symbols/select", Roles: readers, Idempotent: true}},
			Scaling:   defaultScaling,
			Timeout:   30 * time.Second,
			Env:       symbolEnv(),
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "sym",
			RedisKeys: redisMarketCache("sym"),
		},
		{
			Name:        "symbols-screen",
			Kind:        KindFunction,
			Description: "Screen the universe on attributes, market data and indicators; sorted pages behind an opaque cursor",
			Routes:      []Route{{Method: "POST", Path: "/api/v1/symbols/screen", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     30 * time.Second,
			Env:         symbolEnv(),
			Secrets:     []string{"JQUANTS_API_KEY"},
			KeyPrefix:   "sym",
			RedisKeys:   redisKeys(redisMarketCache("sym"), []string{"sym:screen:*"}),
		},
		{
			Name:        "symbols-recommend",
			Kind:        KindFunction,
			Description: "Top symbols by selection score re-ranked with the ensemble's predictions and confidence",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/symbols/recommend", Roles: readers, Idempotent: true, CacheTTL: 30 * time.Second}},
			Scaling:     defaultScaling,
			Timeout:     30 * time.Second,
			Env: func() map[string]string {
				env := symbolEnv()
				env["ENSEMBLE_TIMEOUT"] = "3s"
				return env
			}(),
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "sym",
			RedisKeys: redisMarketCache("sym"),
			Calls:     []string{"ensemble"},
		},
	}
}
