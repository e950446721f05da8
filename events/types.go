package events

import (
	"encoding/json"
	"mime"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/httpx"
)

// Event types. Each names the payload struct documented beside it; see the package doc for
// how a type changes.
const (
	TypeMLBatchRequested      = "com.daytrade.ml.batch.requested"     // MLBatchRequested
	TypeMLBatchCompleted      = "com.daytrade.ml.batch.completed"     // MLBatchCompleted
	TypeMLTrainRequested      = "com.daytrade.ml.train.requested"     // MLTrainRequested
	TypeMLAccuracyDegraded    = "com.daytrade.ml.accuracy.degraded"   // MLAccuracyDegraded
	TypeDataBatchRequested    = "com.daytrade.data.batch.requested"   // DataBatchRequested
	TypeDataBatchCompleted    = "com.daytrade.data.batch.completed"   // DataBatchCompleted
	TypeExecutionTick         = "com.daytrade.execution.tick"         // ExecutionTick
	TypeExecutionOrderFilled  = "com.daytrade.execution.order.filled" // OrderFilled
	TypeNotificationRequested = "com.daytrade.notification.requested" // NotificationRequested
)

// Types lists every event type the platform defines, for catalogs and validation.
var Types = []string{
	TypeMLBatchRequested, TypeMLBatchCompleted, TypeMLTrainRequested, TypeMLAccuracyDegraded,
	TypeDataBatchRequested, TypeDataBatchCompleted,
	TypeExecutionTick, TypeExecutionOrderFilled,
	TypeNotificationRequested,
}

// sourcePrefix roots every source URI-reference; the rest is the emitting function's name,
// so (source, id) is unique across the platform as the spec requires.
const sourcePrefix = "/day-trade/"

// Source returns the source attribute for events emitted by function, e.g.
// Source("ml-batch-predict") == "/day-trade/ml-batch-predict".
func Source(function string) string { return sourcePrefix + function }

// Sources of the functions that emit events.
const (
	SourceMLBatchPredict     = sourcePrefix + "ml-batch-predict"    // ml.batch.requested
	SourceMLBatchWorker      = sourcePrefix + "ml-batch-worker"     // ml.batch.completed, ml.accuracy.degraded
	SourceMLModels           = sourcePrefix + "ml-models"           // ml.train.requested
	SourceDataBatchFetch     = sourcePrefix + "data-batch-fetch"    // data.batch.requested
	SourceDataBatchWorker    = sourcePrefix + "data-batch-worker"   // data.batch.completed
	SourceExecutionScheduler = sourcePrefix + "execution-scheduler" // execution.tick
	SourceExecutionTrade     = sourcePrefix + "execution-trade"     // execution.order.filled
	SourceNotificationsSend  = sourcePrefix + "notifications-send"  // notification.requested
)

// Job outcomes carried by the *Completed payloads; they match the terminal jobs.Status values.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
)

// MLBatchRequested asks the batch worker to predict a set of symbols for one tenant. The job
// already exists (queued) in the jobs store; the worker reports progress on it.
type MLBatchRequested struct {
	JobID   string   `json:"job_id"`           // jobs.Store id; progress and result go there
	Tenant  string   `json:"tenant"`           // owning tenant; the job is only visible to it
	Symbols []string `json:"symbols"`          // Yahoo-style tickers, e.g. "7203.T"; at least one
	Horizon int      `json:"horizon"`          // trading days ahead to forecast, >= 1
	Models  []string `json:"models,omitempty"` // ensemble members to use; empty means the registry default
	// AsOf is the last bar to use; zero means the latest available.
	AsOf time.Time `json:"as_of,omitzero"`
}

// MLBatchCompleted reports the end of an ML batch job.
type MLBatchCompleted struct {
	JobID     string `json:"job_id"`
	Tenant    string `json:"tenant"`
	Outcome   string `json:"outcome"`              // OutcomeSucceeded or OutcomeFailed
	ResultRef string `json:"result_ref,omitempty"` // Redis key holding the predictions when succeeded
	Predicted int    `json:"predicted"`            // symbols predicted
	Failed    int    `json:"failed"`               // symbols that could not be predicted
	Error     string `json:"error,omitempty"`      // caller-safe reason when Outcome is failed
}

// MLTrainRequested asks for a model to be retrained.
type MLTrainRequested struct {
	JobID   string   `json:"job_id"`
	Tenant  string   `json:"tenant,omitempty"`  // empty for platform-wide models
	Model   string   `json:"model"`             // registry name, e.g. "lstm-daily"
	Symbols []string `json:"symbols,omitempty"` // training universe; empty means the model's default
	Period  string   `json:"period,omitempty"`  // history to train on (market.Period, e.g. "2y")
	Reason  string   `json:"reason"`            // "scheduled", "accuracy_degraded" or "manual"
}

// MLAccuracyDegraded reports that a deployed model's live accuracy crossed its threshold.
type MLAccuracyDegraded struct {
	Model      string    `json:"model"`
	Version    string    `json:"version"`           // registry version that degraded
	Metric     string    `json:"metric"`            // e.g. "directional_accuracy", "mape"
	Value      float64   `json:"value"`             // observed over Window
	Threshold  float64   `json:"threshold"`         // the bound Value crossed
	Window     string    `json:"window"`            // evaluation window, e.g. "20d"
	Symbols    []string  `json:"symbols,omitempty"` // worst offenders, if known
	ObservedAt time.Time `json:"observed_at"`
}

// DataBatchRequested asks the data worker to fetch and cache bars for a set of symbols.
type DataBatchRequested struct {
	JobID    string   `json:"job_id"`
	Tenant   string   `json:"tenant"`
	Symbols  []string `json:"symbols"`  // at least one
	Period   string   `json:"period"`   // market.Period, e.g. "1y"
	Interval string   `json:"interval"` // market.Interval, e.g. "1d"
}

// DataBatchCompleted reports the end of a data batch job.
type DataBatchCompleted struct {
	JobID     string   `json:"job_id"`
	Tenant    string   `json:"tenant"`
	Outcome   string   `json:"outcome"`              // OutcomeSucceeded or OutcomeFailed
	ResultRef string   `json:"result_ref,omitempty"` // Redis key listing the cached series
	Fetched   int      `json:"fetched"`              // symbols fetched
	Failed    []string `json:"failed,omitempty"`     // symbols that could not be fetched
	Error     string   `json:"error,omitempty"`
}

// ExecutionTick is a scheduler tick that drives the execution loop.
type ExecutionTick struct {
	Schedule string    `json:"schedule"` // schedule name, e.g. "market-open", "every-5m"
	At       time.Time `json:"at"`       // the instant the tick stands for (not when it was sent)
}

// OrderFilled reports an order (partially) filled. Money is decimal, encoded as a JSON string.
type OrderFilled struct {
	OrderID  string          `json:"order_id"`
	Tenant   string          `json:"tenant"`
	Symbol   string          `json:"symbol"`
	Side     string          `json:"side"`     // "buy" or "sell"
	Quantity decimal.Decimal `json:"quantity"` // filled in this fill, not cumulative
	Price    decimal.Decimal `json:"price"`
	Fee      decimal.Decimal `json:"fee"`
	Currency string          `json:"currency"` // ISO 4217, e.g. "JPY"
	Partial  bool            `json:"partial"`  // more fills will follow
	FilledAt time.Time       `json:"filled_at"`
}

// NotificationRequested asks the dispatcher to notify a tenant.
type NotificationRequested struct {
	Tenant   string            `json:"tenant"`
	Channel  string            `json:"channel"`  // "email", "slack" or "webhook"
	Severity string            `json:"severity"` // "info", "warning" or "critical"
	Title    string            `json:"title"`
	Body     string            `json:"body"`
	Ref      string            `json:"ref,omitempty"`  // what it is about, e.g. a job or order id
	Meta     map[string]string `json:"meta,omitempty"` // channel-specific extras
}

// DecodeData decodes e's JSON data into v. Unknown fields are ignored so that producers can
// add fields without breaking consumers. A payload that is not JSON is an httpx CodeInvalid
// error, which a Receiver answers as poison (400, not retried).
func DecodeData(e cloudevents.Event, v any) error {
	if ct := e.DataContentType(); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != cloudevents.ApplicationJSON && mt != "text/json") {
			return httpx.Errorf(httpx.CodeInvalid, "event data content type %q is not JSON", ct)
		}
	}
	if len(e.Data()) == 0 {
		return httpx.Errorf(httpx.CodeInvalid, "event %s has no data", e.Type())
	}
	if err := json.Unmarshal(e.Data(), v); err != nil {
		return httpx.Wrap(err, httpx.CodeInvalid, "event data is not a valid "+e.Type()+" payload")
	}
	return nil
}
