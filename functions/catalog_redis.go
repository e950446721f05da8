package functions

import "strings"

// Redis key patterns of the shared stores, for the functions' RedisKeys. Each names the keys
// one package builds under a service's key space (see the package's key functions); the
// ACL test in knative/manifests runs those packages as each function's ACL user.
const (
	// redisJobs is shared/jobs: job records and their change channels, "jobs:" for everyone.
	redisJobs = "jobs:*"
	// redisRegistry is shared/ml/registry's Registry: versions, artifacts, the promoted
	// pointer, claims and the promotion channel.
	redisRegistry = "ml:registry:*"
	// redisTracker is shared/ml/registry's Tracker: pending predictions and realised accuracy.
	redisTracker = "ml:track:*"
	// redisLedger is shared/ledger: each tenant's order stream, order index and snapshot.
	redisLedger = "exec:ledger:*"
	// redisIdempotency is shared/idempotency: locks and stored responses per key.
	redisIdempotency = "exec:idem:*"
	// redisWorkflow is shared/workflow: saga runs, their step states, data and leases.
	redisWorkflow = "exec:wf:*"
	// redisGateway is the gateway's own space (API keys, quotas, cached answers, dev key).
	redisGateway = "gw:*"
	// redisGatewayRate is the gateway's GCRA cells: redis_rate puts "rate:" before its keys.
	redisGatewayRate = "rate:gw:*"
)

// RedisACLCommands are what a function's Redis ACL user may run: data commands of every
// type, MULTI/WATCH, Lua scripts and pub/sub, never admin or dangerous ones (KEYS, FLUSHALL,
// CONFIG, DEBUG, ...). Scripts and MULTI get no further than the keys the user may touch.
// TIME is in no category but @fast; the GCRA scripts of redis_rate and the gateway's
// instance registry call it.
const RedisACLCommands = "-@all +@connection +@read +@write +@keyspace +@transaction +@scripting +@pubsub -@admin -@dangerous +time"

// RedisACLRule is the ACL rule of f's Redis user, without user name and password: exactly
// the key and channel patterns of RedisPatterns, and RedisACLCommands. The manifests write
// it into the ACL file; the local platform applies it with ACL SETUSER.
func (f Function) RedisACLRule() string {
	var b strings.Builder
	b.WriteString("resetkeys")
	for _, p := range f.RedisPatterns() {
		b.WriteString(" ~" + p)
	}
	b.WriteString(" resetchannels")
	for _, p := range f.RedisPatterns() {
		b.WriteString(" &" + p)
	}
	b.WriteString(" " + RedisACLCommands)
	return b.String()
}

// redisMarketCache is shared/marketcache in space: cached bars and hit/miss counters.
func redisMarketCache(space string) []string {
	return []string{space + ":bars:*", space + ":stats:*"}
}

// redisDedup is events.Receiver's (source, id) dedup marks in space.
func redisDedup(space string) string { return space + ":ce:*" }

// redisBatchResults is shared/batch's per-job results and write log in space.
func redisBatchResults(space string) string { return space + ":batch:*" }

// redisSchedules is shared/schedule: schedules, each tenant's index and the active set.
var redisSchedules = []string{"exec:sched:*", "exec:sched-tenant:*", "exec:sched-active"}

// redisNotify is shared/notify: notification records and per-channel delivery locks.
var redisNotify = []string{"notif:n:*", "notif:lock:*"}

// redisKeys joins pattern lists into one RedisKeys value.
func redisKeys(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
