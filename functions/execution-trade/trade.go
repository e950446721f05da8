package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/trading"
)

// Settings are the paper account's rules.
type Settings struct {
	InitialCash decimal.Decimal
	Limits      trading.Limits
	Costs       trading.Costs
	Universe    trading.Universe
	MaxBody     int64
	// MarkTimeout bounds the quotes that mark the account's other positions for the risk
	// checks (within the request's own deadline); a symbol not quoted by then is valued at
	// its last fill.
	MarkTimeout time.Duration
}

// deps is everything the handler needs; fields after now are optional.
type deps struct {
	log      *slog.Logger
	tenants  trading.Tenants // the zero value trusts verified tokens alone
	ledger   *ledger.Ledger
	idem     *idempotency.Store
	quotes   trading.Quoter
	settings Settings
	now      func() time.Time
	// relay publishes a fill straight after its append; what it cannot publish stays in the
	// ledger's outbox for execution-fills to send (relay.Pub nil: nothing is published here).
	relay ledger.Relay
	// afterAppend runs once the order's events are in the ledger and before the answer is
	// stored: tests crash the process here.
	afterAppend func(orderID string)
}

// newServer is the function's whole HTTP surface.
func newServer(d deps) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.With(httpx.JSONOnly(d.log), d.idem.Middleware(d.log, d.tenants.FromRequest, d.settings.MaxBody)).
		Method(http.MethodPost, "/api/v1/execution/trade", handleTrade(d))
	return r
}

func handleTrade(d deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ir, ok := idempotency.FromContext(r.Context())
		if !ok {
			httpx.WriteError(w, r, d.log, errors.New("trade handler mounted without the idempotency middleware"))
			return
		}
		v, err := d.place(r.Context(), ir)
		if err != nil {
			httpx.WriteError(w, r, d.log, err)
			return
		}
		_ = httpx.Encode(w, http.StatusCreated, v)
	})
}

// maxAttempts bounds optimistic-concurrency retries when other orders of the same tenant
// keep landing between our read and our append.
const maxAttempts = 50

// place turns one idempotent request into at most one order. The order id comes from the
// tenant and the key, so whatever happened to an earlier attempt with this key (finished,
// crashed after appending, lost its lock), the ledger decides: an order already recorded is
// answered as recorded, never placed again.
func (d deps) place(ctx context.Context, ir idempotency.Request) (*ledger.OrderView, error) {
	tenant := ir.Scope
	id := ledger.OrderID(tenant, ir.Key)
	req, err := trading.DecodeOrder(ir.Body, d.settings.Universe)
	if err != nil {
		return nil, err
	}
	marks := &markQuotes{got: map[string]trading.Quote{}, failed: map[string]error{}}
	for range maxAttempts {
		p, err := d.ledger.Project(ctx, tenant)
		if err != nil {
			return nil, unavailable(err)
		}
		if v, ok := p.Orders[id]; ok {
			return recorded(p, id, v, ir.Fingerprint)
		}
		evs, rej, err := d.decide(ctx, p, id, req, ir.Fingerprint, marks)
		if err != nil {
			return nil, err
		}
		// Once decided, the append and what follows must not be cut short by a client
		// hanging up: the answer is what gets stored for the retry.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		last, err := d.ledger.Append(actx, tenant, id, p.LastID, evs...)
		cancel()
		switch {
		case errors.Is(err, ledger.ErrConflict), errors.Is(err, ledger.ErrExists):
			continue // re-read: another order moved the account, or this one got in first
		case err != nil:
			return nil, unavailable(err)
		}
		if d.afterAppend != nil {
			d.afterAppend(id)
		}
		if rej != nil {
			return nil, rej.HTTPError(map[string]any{"order_id": id})
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		p, err = d.ledger.Project(pctx, tenant)
		if err != nil {
			return nil, unavailable(err)
		}
		v := p.Orders[id]
		if v == nil {
			return nil, errors.New("appended order missing from the projection")
		}
		if evs[len(evs)-1].Type == ledger.OrderFilled {
			fill := evs[len(evs)-1]
			fill.ID = last
			d.publish(pctx, tenant, v.Order, fill)
		}
		return v, nil
	}
	return nil, &httpx.Error{Code: httpx.CodeUnavailable, Message: "the account is busy; retry", RetryAfter: time.Second}
}

// recorded answers for an order already in the ledger exactly as its first attempt did.
func recorded(p *ledger.Projection, id string, v *ledger.OrderView, fingerprint string) (*ledger.OrderView, error) {
	if h := p.RequestHashes[id]; h != "" && h != fingerprint {
		return nil, &httpx.Error{Code: httpx.CodeUnprocessable, Message: "this Idempotency-Key was used with a different request", Extra: map[string]any{"rule": "idempotency_key_reuse"}}
	}
	if v.Status == ledger.StatusRejected && v.Rejection != nil {
		return nil, v.Rejection.HTTPError(map[string]any{"order_id": id})
	}
	return v, nil
}

// markQuotes are one request's quotes for the account's other symbols: a decision retried
// because another order moved the account reuses them rather than waiting on the provider
// again.
type markQuotes struct {
	got    map[string]trading.Quote
	failed map[string]error
}

// markBook is the account as the risk checks read it: every open position marked to market
// (the order's own symbol at q, the others quoted within MarkTimeout, falling back to their
// last fill price with a log line), and the day's P&L marked to market.
func (d deps) markBook(ctx context.Context, p *ledger.Projection, now time.Time, q trading.Quote, mq *markQuotes) trading.Book {
	var missing []string
	for _, s := range p.MarkSymbols(now) {
		_, got := mq.got[s]
		_, failed := mq.failed[s]
		if s != q.Symbol && !got && !failed {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		mctx, cancel := context.WithTimeout(ctx, d.settings.MarkTimeout)
		got, failed := trading.QuoteAll(mctx, d.quotes, missing)
		cancel()
		for s, qt := range got {
			mq.got[s] = qt
		}
		for s, err := range failed {
			mq.failed[s] = err
			d.log.WarnContext(ctx, "no quote to mark a position for the risk checks; valued at its last fill price", "symbol", s, "err", err)
		}
	}
	quotes := make(map[string]trading.Quote, len(mq.got)+1)
	for s, qt := range mq.got {
		quotes[s] = qt
	}
	quotes[q.Symbol] = q
	return p.MarkedBook(now, quotes)
}

// decide checks the order against the market and the account and returns the events that
// record it: a rejection by a risk rule is recorded (and returned as rej); an order the
// market refuses (closed, beyond the price band, unknown symbol) is not, and comes back as
// err.
func (d deps) decide(ctx context.Context, p *ledger.Projection, id string, req trading.OrderRequest, fingerprint string, marks *markQuotes) (evs []ledger.Event, rej *trading.Rejection, err error) {
	now := d.now()
	at := now.UTC()
	order := trading.Order{ID: id, Symbol: req.Symbol, Side: req.Side, Type: req.Type, Quantity: req.Quantity, LimitPrice: req.LimitPrice}
	open := market.InSession(now)
	if order.Type == trading.Market && !open {
		r := &trading.Rejection{Rule: trading.RuleMarketHours, Message: "market orders are taken only during TSE sessions (09:00–11:30, 12:30–15:30 JST on trading days)"}
		return nil, nil, r.HTTPError(nil)
	}
	q, err := d.quotes.Quote(ctx, order.Symbol)
	if err != nil {
		return nil, nil, quoteError(err)
	}
	topix := d.settings.Universe.TOPIX500(order.Symbol)
	if r := trading.CheckPriceBand(order, q, topix); r != nil {
		return nil, nil, r.HTTPError(nil)
	}
	var fill *trading.Fill
	if open {
		fill = trading.Simulate(order, q, topix, d.settings.Costs)
	}
	if fill == nil {
		order.ExpiresAt = nextClose(now).UTC()
	}
	est := trading.EstimatePrice(order, q, topix, d.settings.Costs)
	fee := est.Mul(decimal.NewFromInt(order.Quantity)).Mul(d.settings.Costs.FeeBps).Div(decimal.NewFromInt(10_000)).Ceil()

	q.Symbol = order.Symbol
	book := d.markBook(ctx, p, now, q, marks)
	if p.Events == 0 {
		amt := d.settings.InitialCash
		book.Cash = amt
		evs = append(evs, ledger.Event{Type: ledger.CashDeposited, At: at, Amount: &amt})
	}
	if rej = trading.CheckRisk(d.settings.Limits, book, order, est, fee, fill == nil); rej != nil {
		evs = append(evs, ledger.Event{Type: ledger.OrderRejected, At: at, OrderID: id, RequestHash: fingerprint, Order: &order, Rejection: rej})
		return evs, rej, nil
	}
	evs = append(evs, ledger.Event{Type: ledger.OrderAccepted, At: at, OrderID: id, RequestHash: fingerprint, Order: &order})
	if fill != nil {
		evs = append(evs, ledger.Event{Type: ledger.OrderFilled, At: at, OrderID: id, Fill: fill})
	}
	return evs, nil, nil
}

// nextClose is the end of the trading day an order placed at now rests in: today's close
// if the market has not closed yet, else the next trading day's.
func nextClose(now time.Time) time.Time {
	d := now.In(market.JST)
	for range 60 {
		c := time.Date(d.Year(), d.Month(), d.Day(), 15, 30, 0, 0, market.JST)
		if market.IsTradingDay(c) && now.Before(c) {
			return c
		}
		d = d.AddDate(0, 0, 1)
	}
	return now.Add(24 * time.Hour)
}

// publish sends the fill's event now. Failing is not worth failing the order for: the
// fill is in the ledger's outbox and the next relay pass (execution-fills) publishes it,
// with the same event id.
func (d deps) publish(ctx context.Context, tenant string, o trading.Order, fill ledger.Event) {
	if d.relay.Pub == nil {
		d.log.DebugContext(ctx, "order filled; no event sink configured, left in the outbox", "order_id", o.ID)
		return
	}
	if err := d.relay.Publish(ctx, tenant, o, fill); err != nil {
		d.log.WarnContext(ctx, "order.filled not published yet; the outbox relay will", "order_id", o.ID, "entry", fill.ID, "err", err)
	}
}

func unavailable(err error) error {
	return &httpx.Error{Code: httpx.CodeUnavailable, Message: "order ledger unavailable; retry with the same Idempotency-Key", RetryAfter: time.Second, Err: err}
}

// quoteError turns the market package's error kinds into the HTTP vocabulary.
func quoteError(err error) error {
	var (
		he *httpx.Error
		ue *market.UnavailableError
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, market.ErrUnknownSymbol):
		r := &trading.Rejection{Rule: trading.RuleUnknownSymbol, Message: "the market-data provider does not know this symbol"}
		return r.HTTPError(nil)
	case errors.As(err, &ue) && ue.RetryAfter > 0:
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market data provider unavailable", RetryAfter: ue.RetryAfter, Err: err}
	case errors.Is(err, market.ErrUnavailable), errors.Is(err, market.ErrUnsupported):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market data provider unavailable", RetryAfter: 5 * time.Second, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return httpx.Wrap(err, httpx.CodeTimeout, "market data provider timed out")
	}
	return err
}
