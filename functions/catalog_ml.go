package functions

import "time"

// typeMLTrainRequested is events.TypeMLTrainRequested, spelled out so that the catalog (and
// everything that imports it, like the gateway) does not link the CloudEvents SDK.
const typeMLTrainRequested = "com.daytrade.ml.train.requested"

func mlFunctions() []Function {
	return []Function{
		{
			Name:        "ensemble",
			Kind:        KindService,
			Description: "Always-warm inference service: the promoted model in memory, POST /v1/predict, GET /v1/models; internal only",
			// No routes: the gateway never reaches it; functions listing it in Calls do.
			Scaling: Scaling{MinScale: 1, MaxScale: 4, Concurrency: 0, Target: 200},
			Timeout: 30 * time.Second,
			// A predict batch is up to 10,000 rows of ~30 numbers.
			Env:       map[string]string{"MAX_BODY_BYTES": "16777216", "ML_REGISTRY_POLL": "5s"},
			KeyPrefix: "ml",
			RedisKeys: []string{redisRegistry},
		},
		{
			Name:        "ml-predict",
			Kind:        KindFunction,
			Description: "Next-day direction for one symbol from its recent bars or given features, via the ensemble; records and scores every call; raises accuracy alerts",
			// Idempotent: a prediction changes nothing, and its record is keyed by (symbol, bar,
			// version), so a retried request is not counted twice.
			Routes:    []Route{{Method: "POST", Path: "/api/v1/ml/predict", Roles: readers, Idempotent: true}},
			Scaling:   defaultScaling,
			Timeout:   30 * time.Second,
			Env:       map[string]string{"DATA_PROVIDER": "synthetic", "ENSEMBLE_TIMEOUT": "2s"},
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "ml",
			// ml:alert:* is the accuracy alert's per-period claim, shared with ml-batch-worker.
			RedisKeys: redisKeys([]string{redisTracker, "ml:alert:*"}, redisMarketCache("data")),
			Calls:     []string{"ensemble"},
			Publishes: []string{evtMLAccuracyDegraded},
		},
		{
			Name:        "ml-models",
			Kind:        KindFunction,
			Description: "Registered model versions with walk-forward metrics and realised accuracy",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/ml/models", Roles: readers, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     30 * time.Second,
			KeyPrefix:   "ml",
			RedisKeys:   []string{redisRegistry, redisTracker},
		},
		{
			Name:        "ml-train",
			Kind:        KindFunction,
			Description: "Retrains, evaluates walk-forward, registers and (by policy) promotes the ensemble on com.daytrade.ml.train.requested",
			Events:      []Subscription{{Type: typeMLTrainRequested}},
			// Training is CPU-bound: one at a time per instance, few instances.
			Scaling:   Scaling{MinScale: 0, MaxScale: 2, Concurrency: 1, Target: 1, IdleWindow: 60 * time.Second},
			Timeout:   10 * time.Minute,
			Env:       map[string]string{"DATA_PROVIDER": "synthetic", "ML_TRAIN_PROMOTE": "if-better", "ML_TRAIN_PERIOD": "5y"},
			Secrets:   []string{"JQUANTS_API_KEY"},
			KeyPrefix: "ml",
			RedisKeys: []string{redisRegistry, redisDedup("ml")},
		},
	}
}
