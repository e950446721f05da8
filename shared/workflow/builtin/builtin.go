// Package builtin holds the platform's built-in workflows, each a saga of calls to other
// functions over HTTP:
//
//   - daily-predict: select symbols → fetch their bars (warming the market-data cache) →
//     batch predict (one ml-batch-predict job for all of them, waited for) → notify the tenant.
//   - paper-trade: select symbols → predict each (ml-predict: the trade step needs every
//     symbol's call, which a batch job keeps in ml-batch-worker's store) → buy the confident "up" calls as paper
//     market orders within the trade function's risk limits → notify the tenant. If a later
//     step fails, the orders are unwound with offsetting sells.
//
// Every call carries the run's tenant, and every order an Idempotency-Key derived from the
// run id, so a resumed run replays an order instead of placing it twice.
package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/workflow"
)

// Workflow names.
const (
	DailyPredict = "daily-predict"
	PaperTrade   = "paper-trade"
)

// Names lists the built-in workflows.
var Names = []string{DailyPredict, PaperTrade}

// Functions the workflows call.
const (
	fnSelect  = "symbols-select"
	fnStocks  = "data-stocks"
	fnPredict = "ml-predict"
	fnTrade   = "execution-trade"
	fnNotify  = "notifications-send"
)

// Calls lists the functions the built-in workflows call, for the catalog.
var Calls = []string{fnSelect, fnStocks, fnPredict, fnBatchPredict, fnJobs, fnTrade, fnNotify}

// Config is a schedule's config for a built-in workflow. Every field is optional.
type Config struct {
	Criteria string   `json:"criteria,omitempty"` // symbols-select preset, e.g. "day_trading"
	Count    int      `json:"count,omitempty"`    // symbols to select, 1..20; default 5
	Symbols  []string `json:"symbols,omitempty"`  // restrict the selection to these tickers
	// Channels are notifications-send channels ("log", {"type":"webhook","url":...}); default log.
	Channels []json.RawMessage `json:"channels,omitempty"`
	// paper-trade only
	MinConfidence float64 `json:"min_confidence,omitempty"` // 0..1; default 0 (every "up" call)
	Lots          int     `json:"lots,omitempty"`           // lots of 100 per order, 1..10; default 1
	MaxOrders     int     `json:"max_orders,omitempty"`     // 1..10; default 3
}

const (
	defaultCount     = 5
	maxCount         = 20
	defaultMaxOrders = 3
	maxLots          = 10
	maxOrders        = 10
	lotSize          = 100
)

// ParseConfig validates workflow's name and raw config (strict JSON: unknown fields are
// refused) and returns it with defaults applied. Errors are CodeInvalid naming "workflow"
// or "config.<field>".
func ParseConfig(name string, raw json.RawMessage) (Config, error) {
	var c Config
	if !slices.Contains(Names, name) {
		return c, httpx.Invalid("invalid schedule", httpx.FieldError{Field: "workflow",
			Reason: fmt.Sprintf("unknown workflow %q: one of %s", name, strings.Join(Names, ", "))})
	}
	if len(bytes.TrimSpace(raw)) > 0 && string(bytes.TrimSpace(raw)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, httpx.Invalid("invalid schedule", httpx.FieldError{Field: "config", Reason: err.Error()})
		}
	}
	var fields []httpx.FieldError
	add := func(f, reason string) {
		fields = append(fields, httpx.FieldError{Field: "config." + f, Reason: reason})
	}
	if c.Count == 0 {
		c.Count = defaultCount
	}
	if c.Count < 1 || c.Count > maxCount {
		add("count", fmt.Sprintf("must be 1..%d", maxCount))
	}
	if len(c.Symbols) > maxCount {
		add("symbols", fmt.Sprintf("at most %d", maxCount))
	}
	for i, s := range c.Symbols {
		if s == "" || len(s) > 16 || strings.ContainsAny(s, "/?#% ") {
			add(fmt.Sprintf("symbols[%d]", i), "a ticker such as 7203.T")
		}
	}
	if len(c.Criteria) > 64 {
		add("criteria", "at most 64 bytes")
	}
	if len(c.Channels) > 5 {
		add("channels", "at most 5")
	}
	if len(c.Channels) == 0 {
		c.Channels = []json.RawMessage{json.RawMessage(`"log"`)}
	}
	if c.MinConfidence < 0 || c.MinConfidence > 1 {
		add("min_confidence", "must be 0..1")
	}
	if c.Lots == 0 {
		c.Lots = 1
	}
	if c.Lots < 1 || c.Lots > maxLots {
		add("lots", fmt.Sprintf("must be 1..%d", maxLots))
	}
	if c.MaxOrders == 0 {
		c.MaxOrders = defaultMaxOrders
	}
	if c.MaxOrders < 1 || c.MaxOrders > maxOrders {
		add("max_orders", fmt.Sprintf("must be 1..%d", maxOrders))
	}
	if name != PaperTrade && (c.MinConfidence != 0 || c.Lots != 1 || c.MaxOrders != defaultMaxOrders) {
		add("", "min_confidence, lots and max_orders apply to paper-trade only")
	}
	if len(fields) > 0 {
		return c, httpx.Invalid("invalid schedule", fields...)
	}
	return c, nil
}

// Workflows returns the built-in workflows, calling functions through c.
func Workflows(c *Caller) map[string]workflow.Workflow { return workflows(steps{c: c}) }

func workflows(s steps) map[string]workflow.Workflow {
	return map[string]workflow.Workflow{
		DailyPredict: {Name: DailyPredict, Steps: []workflow.Step{
			{Name: "select", Do: s.selectSymbols},
			{Name: "fetch", Do: s.fetch},
			{Name: "predict", Do: s.batchPredict},
			{Name: "notify", Do: s.notify},
		}},
		PaperTrade: {Name: PaperTrade, Steps: []workflow.Step{
			{Name: "select", Do: s.selectSymbols},
			{Name: "predict", Do: s.predict},
			{Name: "trade", Do: s.trade, Compensate: s.unwind},
			{Name: "notify", Do: s.notify},
		}},
	}
}

type steps struct {
	c    *Caller
	poll time.Duration // between reads of a batch job's status; default defaultPoll
}

func config(run *workflow.Run) (Config, error) {
	return ParseConfig(run.Workflow, run.Config)
}

// selectSymbols asks symbols-select for the run's universe.
func (s steps) selectSymbols(ctx context.Context, run *workflow.Run) error {
	cfg, err := config(run)
	if err != nil {
		return err
	}
	req := map[string]any{"count": cfg.Count, "filters": map[string]any{}}
	if cfg.Criteria != "" {
		req["criteria"] = cfg.Criteria
	}
	if len(cfg.Symbols) > 0 {
		req["filters"] = map[string]any{"symbols": cfg.Symbols}
	}
	var resp struct {
		Symbols []struct {
			Ticker string `json:"ticker"`
		} `json:"symbols"`
	}
	if err := s.c.Call(ctx, fnSelect, http.MethodPost, "/api/v1/symbols/select", run.Tenant, nil, req, &resp); err != nil {
		return err
	}
	var tickers []string
	for _, sym := range resp.Symbols {
		if sym.Ticker != "" {
			tickers = append(tickers, sym.Ticker)
		}
	}
	if len(tickers) == 0 {
		return errors.New("symbols-select selected no symbols")
	}
	return run.Save(ctx, "symbols", tickers)
}

func symbolsOf(ctx context.Context, run *workflow.Run) ([]string, error) {
	var syms []string
	if err := run.Load(ctx, "symbols", &syms); err != nil {
		return nil, err
	}
	return syms, nil
}

// fetch loads every symbol's bars through data-stocks, which leaves them in the cache that
// the predictor reads.
func (s steps) fetch(ctx context.Context, run *workflow.Run) error {
	syms, err := symbolsOf(ctx, run)
	if err != nil {
		return err
	}
	points := map[string]int{}
	for _, sym := range syms {
		var resp struct {
			TotalPoints int `json:"total_points"`
		}
		if err := s.c.Call(ctx, fnStocks, http.MethodGet, "/api/v1/data/stocks/"+url.PathEscape(sym), run.Tenant, nil, nil, &resp); err != nil {
			return err
		}
		points[sym] = resp.TotalPoints
	}
	return run.Save(ctx, "fetched", points)
}

// Prediction is one symbol's forecast as ml-predict gives it.
type Prediction struct {
	Symbol       string  `json:"symbol"`
	Prediction   string  `json:"prediction"` // up, down or flat
	Probability  float64 `json:"probability"`
	Confidence   float64 `json:"confidence"`
	ModelVersion string  `json:"model_version"`
}

func (s steps) predict(ctx context.Context, run *workflow.Run) error {
	syms, err := symbolsOf(ctx, run)
	if err != nil {
		return err
	}
	var preds []Prediction
	for _, sym := range syms {
		var p Prediction
		if err := s.c.Call(ctx, fnPredict, http.MethodPost, "/api/v1/ml/predict", run.Tenant, nil, map[string]string{"symbol": sym}, &p); err != nil {
			return err
		}
		preds = append(preds, p)
	}
	return run.Save(ctx, "predictions", preds)
}

// Order is one paper order the trade step placed or had refused.
type Order struct {
	Symbol   string `json:"symbol"`
	OrderID  string `json:"order_id,omitempty"`
	Status   string `json:"status"` // the ledger's status, or "refused"
	Quantity int64  `json:"quantity"`
	Filled   int64  `json:"filled_quantity"`
	Rule     string `json:"rule,omitempty"` // the risk or market rule that refused it
	Reason   string `json:"reason,omitempty"`
}

type orderAnswer struct {
	OrderID        string `json:"order_id"`
	Status         string `json:"status"`
	FilledQuantity int64  `json:"filled_quantity"`
}

func (s steps) order(ctx context.Context, run *workflow.Run, key, symbol, side string, qty int64) (orderAnswer, error) {
	var a orderAnswer
	body := map[string]any{"symbol": symbol, "side": side, "type": "market", "quantity": qty}
	h := http.Header{"Idempotency-Key": {key}}
	err := s.c.Call(ctx, fnTrade, http.MethodPost, "/api/v1/execution/trade", run.Tenant, h, body, &a)
	return a, err
}

// trade buys the confident "up" calls. An order the trade function refuses by rule (risk
// limits, market hours, price limits: a 422 or 400 naming the rule) is recorded and skipped;
// any other failure unwinds the orders this step placed and fails the step.
func (s steps) trade(ctx context.Context, run *workflow.Run) error {
	cfg, err := config(run)
	if err != nil {
		return err
	}
	var preds []Prediction
	if err := run.Load(ctx, "predictions", &preds); err != nil {
		return err
	}
	var orders []Order
	for _, p := range preds {
		if len(orders) >= cfg.MaxOrders {
			break
		}
		if p.Prediction != "up" || p.Confidence < cfg.MinConfidence {
			continue
		}
		qty := int64(cfg.Lots * lotSize)
		a, err := s.order(ctx, run, run.ID+".buy."+p.Symbol, p.Symbol, "buy", qty)
		if ce, ok := callError(err); ok && ce.Rule != "" && ce.Status/100 == 4 {
			orders = append(orders, Order{Symbol: p.Symbol, Status: "refused", Quantity: qty, Rule: ce.Rule, Reason: ce.Detail})
			continue
		}
		if err != nil {
			// Save what was placed so that unwinding sees it, then undo this step's orders.
			_ = run.Save(ctx, "orders", orders)
			if uerr := s.unwind(ctx, run); uerr != nil {
				return fmt.Errorf("%s; unwinding this step's orders also failed: %s", msgOf(err), msgOf(uerr))
			}
			return err
		}
		orders = append(orders, Order{Symbol: p.Symbol, OrderID: a.OrderID, Status: a.Status, Quantity: qty, Filled: a.FilledQuantity})
	}
	return run.Save(ctx, "orders", orders)
}

// unwind sells what the trade step bought, each sell keyed so that it happens once.
func (s steps) unwind(ctx context.Context, run *workflow.Run) error {
	var orders []Order
	if err := run.Load(ctx, "orders", &orders); err != nil {
		if errors.Is(err, workflow.ErrNoValue) {
			return nil
		}
		return err
	}
	var failed []string
	for _, o := range orders {
		if o.Filled <= 0 {
			continue
		}
		if _, err := s.order(ctx, run, run.ID+".unwind."+o.Symbol, o.Symbol, "sell", o.Filled); err != nil {
			failed = append(failed, o.Symbol+": "+msgOf(err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not sell back %s", strings.Join(failed, "; "))
	}
	return nil
}

func msgOf(err error) string {
	var he *httpx.Error
	if errors.As(err, &he) {
		return he.Message
	}
	return err.Error()
}

// notify sends the tenant a summary of the run.
func (s steps) notify(ctx context.Context, run *workflow.Run) error {
	cfg, err := config(run)
	if err != nil {
		return err
	}
	syms, err := symbolsOf(ctx, run)
	if err != nil {
		return err
	}
	// A run predicted either symbol by symbol (predictions) or with one batch job (batch).
	var (
		preds []Prediction
		batch Batch
	)
	if err := run.Load(ctx, "predictions", &preds); err != nil && !errors.Is(err, workflow.ErrNoValue) {
		return err
	}
	if err := run.Load(ctx, valBatch, &batch); err != nil && !errors.Is(err, workflow.ErrNoValue) {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s run %s: %d symbols", run.Workflow, run.ID, len(syms))
	for _, p := range preds {
		fmt.Fprintf(&b, "\n%s %s (p=%.3f, confidence %.3f)", p.Symbol, p.Prediction, p.Probability, p.Confidence)
	}
	result := map[string]any{"symbols": syms, "predictions": len(preds)}
	if batch.JobID != "" {
		fmt.Fprintf(&b, "\nbatch prediction job %s %s: %d predicted, %d failed", batch.JobID, batch.Status, batch.Predicted, len(batch.Failed))
		if len(batch.Failed) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(batch.Failed, ", "))
		}
		result["predictions"], result["batch_job"] = batch.Predicted, batch.JobID
	}
	if run.Workflow == PaperTrade {
		var orders []Order
		if err := run.Load(ctx, "orders", &orders); err != nil && !errors.Is(err, workflow.ErrNoValue) {
			return err
		}
		filled := 0
		for _, o := range orders {
			if o.Filled > 0 {
				filled++
			}
			fmt.Fprintf(&b, "\norder %s %s: %s", o.Symbol, o.OrderID, o.Status)
			if o.Rule != "" {
				fmt.Fprintf(&b, " (%s)", o.Rule)
			}
		}
		result["orders"], result["filled"] = len(orders), filled
	}
	req := map[string]any{
		"type":     "workflow." + run.Workflow,
		"title":    run.Workflow + " finished",
		"message":  b.String(),
		"channels": cfg.Channels,
		"ref":      run.ID,
	}
	var resp struct {
		NotificationID string `json:"notification_id"`
	}
	if err := s.c.Call(ctx, fnNotify, http.MethodPost, "/api/v1/notifications/send", run.Tenant, nil, req, &resp); err != nil {
		return err
	}
	result["notification_id"] = resp.NotificationID
	return run.SetResult(ctx, result)
}
