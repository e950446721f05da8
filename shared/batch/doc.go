// Package batch is the shared machinery of the platform's batch jobs (batch prediction, batch
// fetch): an HTTP function validates a list of symbols, creates a job and publishes a
// "requested" event (Submitter); a CloudEvent worker works through the symbols in chunks,
// recording every symbol's result exactly once and the job's progress (Runner, Results).
//
// # Exactly-once effects over at-least-once delivery
//
// The Broker may deliver a request twice, and a worker may die halfway through a job. Each
// symbol's result is therefore written with HSETNX under (job, symbol): a redelivered or
// resumed run skips what is already written and never writes a symbol twice. Progress
// counters only grow, and the job's status moves through jobs.Store's validated transitions,
// so a second run of a finished job changes nothing and only re-announces its completion
// under the same event id, which consumers dedup.
package batch
