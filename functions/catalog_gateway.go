package functions

import "time"

func gatewayFunctions() []Function {
	return []Function{{
		Name:        "gateway",
		Kind:        KindGateway,
		Description: "API gateway: the one public entry under /api/v1",
		Scaling:     Scaling{MinScale: 1, MaxScale: 10, Concurrency: 0, Target: 500, IdleWindow: 0},
		Timeout:     60 * time.Second,
		KeyPrefix:   "gw",
		RedisKeys:   []string{redisGateway, redisGatewayRate},
	}}
}
