// Package events is the CloudEvents contract between the platform's functions: the event
// types and sources, the payload carried by each type, a Publisher that sends events to the
// Knative sink and a Receiver that turns delivered events into handler calls exactly once per
// (source, id) even though delivery is at least once.
//
// # Types and versioning
//
// Types are reverse-DNS, com.daytrade.<domain>.<noun>.<verb>, and name a payload shape:
//
//   - Additive changes only: a new optional field is fine, because consumers decode leniently
//     (unknown fields are ignored, see DecodeData) and must treat a missing field as its zero
//     value.
//   - A breaking change (a field removed, renamed, retyped or given a new meaning) gets a new
//     type with a version suffix, e.g. com.daytrade.ml.batch.requested.v2. Producers publish
//     both types until every Trigger on the old type is gone.
//   - dataschema is optional; when set it is a URI naming the payload struct's version.
//
// # Delivery
//
// Publish sends in binary mode with bounded exponential backoff (the SDK's retry context is
// the only retry layer) and carries the caller's W3C trace context as the traceparent and
// tracestate extension attributes. The Receiver accepts binary and structured mode, dedupes
// on (source, id) in Redis and answers 2xx only after the handler committed its work, 4xx for
// poison events (the Broker sends them to the dead-letter sink) and 429/5xx for transient
// failures (the Broker retries them).
package events
