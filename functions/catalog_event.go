package functions

import "time"

// Event types and sources of the batch jobs, spelled out (they equal the constants in package
// events) so that the catalog does not link the CloudEvents SDK into everything importing it.
const (
	evtMLBatchRequested     = "com.daytrade.ml.batch.requested"
	evtMLBatchCompleted     = "com.daytrade.ml.batch.completed"
	evtMLAccuracyDegraded   = "com.daytrade.ml.accuracy.degraded"
	evtDataBatchRequested   = "com.daytrade.data.batch.requested"
	evtDataBatchCompleted   = "com.daytrade.data.batch.completed"
	evtSourceMLBatchPredict = "/day-trade/ml-batch-predict"
	evtSourceDataBatchFetch = "/day-trade/data-batch-fetch"
)

// workerScaling is for CloudEvent workers: each event is a whole job, so few run per
// instance; the Broker's retries absorb a burst.
var workerScaling = Scaling{MinScale: 0, MaxScale: 5, Concurrency: 4, Target: 2, IdleWindow: 60 * time.Second}

// eventFunctions are the batch jobs (an HTTP function that queues, a worker on the Trigger),
// the jobs' status, and the dead-letter sink of every Trigger.
func eventFunctions() []Function {
	batchers := []string{RoleTrader, RoleAdmin}
	return []Function{
		{
			Name:        "ml-batch-predict",
			Kind:        KindFunction,
			Description: "Queues a prediction of up to 100 symbols as a job; answers 202 with its status URL",
			// Not idempotent: each call creates a job (the gateway must not retry it).
			Routes:    []Route{{Method: "POST", Path: "/api/v1/ml/batch-predict", Roles: batchers}},
			Scaling:   defaultScaling,
			Timeout:   30 * time.Second,
			KeyPrefix: "jobs",
			RedisKeys: []string{redisJobs},
			Publishes: []string{evtMLBatchRequested},
		},
		{
			Name:        "ml-batch-worker",
			Kind:        KindFunction,
			Description: "Carries out batch predictions through the ensemble, chunk by chunk, each symbol's result written once; raises accuracy alerts",
			Events:      []Subscription{{Type: evtMLBatchRequested, Source: evtSourceMLBatchPredict}},
			Scaling:     workerScaling,
			Timeout:     10 * time.Minute,
			Env:         map[string]string{"DATA_PROVIDER": "synthetic", "BATCH_CHUNK": "20", "ACCURACY_THRESHOLD": "0.5"},
			Secrets:     []string{"JQUANTS_API_KEY"},
			KeyPrefix:   "ml",
			RedisKeys:   redisKeys([]string{redisDedup("ml"), redisBatchResults("ml"), redisTracker, "ml:alert:*", redisJobs}, redisMarketCache("data")),
			Calls:       []string{"ensemble"},
			Publishes:   []string{evtMLBatchCompleted, evtMLAccuracyDegraded},
		},
		{
			Name:        "data-batch-fetch",
			Kind:        KindFunction,
			Description: "Queues a market-data fetch of up to 50 symbols as a job; answers 202 with its status URL",
			Routes:      []Route{{Method: "POST", Path: "/api/v1/data/batch-fetch", Roles: batchers}},
			Scaling:     defaultScaling,
			Timeout:     30 * time.Second,
			KeyPrefix:   "jobs",
			RedisKeys:   []string{redisJobs},
			Publishes:   []string{evtDataBatchRequested},
		},
		{
			Name:        "data-batch-worker",
			Kind:        KindFunction,
			Description: "Carries out batch fetches: warms the market-data cache symbol by symbol, each outcome written once",
			Events:      []Subscription{{Type: evtDataBatchRequested, Source: evtSourceDataBatchFetch}},
			Scaling:     workerScaling,
			Timeout:     10 * time.Minute,
			Env:         map[string]string{"DATA_PROVIDER": "synthetic", "BATCH_CHUNK": "5"},
			Secrets:     []string{"JQUANTS_API_KEY"},
			KeyPrefix:   "data",
			RedisKeys:   redisKeys([]string{redisDedup("data"), redisBatchResults("data"), redisJobs}, redisMarketCache("data")),
			Publishes:   []string{evtDataBatchCompleted},
		},
		{
			Name:        "execution-jobs",
			Kind:        KindFunction,
			Description: "A tenant's batch job by id, and its progress as Server-Sent Events until it ends",
			Routes: []Route{
				{Method: "GET", Path: "/api/v1/execution/jobs/{job_id}", Roles: readers, Idempotent: true},
				{Method: "GET", Path: "/api/v1/execution/jobs/{job_id}/events", Roles: readers, Idempotent: true},
			},
			Scaling: defaultScaling,
			// Long enough for an event stream (JOB_STREAM_MAX ends it first; clients reconnect).
			Timeout:   5 * time.Minute,
			KeyPrefix: "jobs",
			RedisKeys: []string{redisJobs},
		},
		{
			Name:        "dead-letter",
			Kind:        KindFunction,
			Description: "Every Trigger's deadLetterSink: parks undeliverable events with their error attributes; admins list and replay them",
			Routes: []Route{
				{Method: "GET", Path: "/api/v1/events/dead-letters", Roles: admins, Idempotent: true},
				{Method: "POST", Path: "/api/v1/events/dead-letters/{id}/replay", Roles: admins},
			},
			Scaling:   defaultScaling,
			Timeout:   30 * time.Second,
			KeyPrefix: "events",
			RedisKeys: []string{"events:dl:*"},
		},
	}
}
