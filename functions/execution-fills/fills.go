package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-chi/chi/v5"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/trading"
)

// PingEventType is what a Knative PingSource sends; its Trigger delivers it as a tick.
const PingEventType = "dev.knative.sources.ping"

// Bars returns a symbol's recent 1-minute bars, oldest first.
type Bars interface {
	MinuteBars(ctx context.Context, symbol string) ([]market.Bar, error)
}

// BarsFunc adapts a function to Bars.
type BarsFunc func(ctx context.Context, symbol string) ([]market.Bar, error)

// MinuteBars calls f.
func (f BarsFunc) MinuteBars(ctx context.Context, symbol string) ([]market.Bar, error) {
	return f(ctx, symbol)
}

// cachedBars reads five days of minute bars through the market-data cache (its 1m TTL is
// a minute): an order resting since the evening before a long weekend still finds the bars
// of the session it rested into.
type cachedBars struct{ cache *marketcache.Cache }

func (c cachedBars) MinuteBars(ctx context.Context, symbol string) ([]market.Bar, error) {
	e, _, err := c.cache.Bars(ctx, market.Query{Symbol: symbol, Period: "5d", Interval: "1m"})
	if err != nil {
		return nil, err
	}
	return e.Bars, nil
}

// sweeper closes resting orders and relays the outbox.
type sweeper struct {
	log      *slog.Logger
	ledger   *ledger.Ledger
	relay    ledger.Relay
	bars     Bars
	costs    trading.Costs
	limits   trading.Limits
	universe trading.Universe
	grace    time.Duration
	now      func() time.Time
}

// Result counts what one sweep did.
type Result struct {
	Filled, Expired, Cancelled, Published int
}

func newServer(s *sweeper, recv *events.Receiver) http.Handler {
	handle := func(ctx context.Context, e cloudevents.Event) error {
		res, err := s.sweep(ctx)
		s.log.Info("tick", slog.String("event", e.ID()), slog.Int("filled", res.Filled), slog.Int("expired", res.Expired),
			slog.Int("cancelled", res.Cancelled), slog.Int("published", res.Published), slog.Any("err", err))
		if err != nil {
			// Everything the sweep did is committed and a repeat is harmless: let the Broker retry.
			return httpx.Wrap(err, httpx.CodeUnavailable, "fill sweep incomplete")
		}
		return nil
	}
	recv.Handle(events.TypeExecutionTick, handle)
	recv.Handle(PingEventType, handle)
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/", recv.HTTPHandler())
	return r
}

// sweep closes what can be closed in every tenant's ledger, then relays the outbox's fills
// older than the grace period. A tenant or symbol that fails is skipped (and reported) so
// that one bad account never holds up the others.
func (s *sweeper) sweep(ctx context.Context) (Result, error) {
	var res Result
	tenants, err := s.ledger.Tenants(ctx)
	if err != nil {
		return res, err
	}
	bars := map[string][]timedBar{} // one read per symbol per sweep
	var errs []error
	for _, t := range tenants {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := s.sweepTenant(ctx, t, bars, &res); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
		}
	}
	n, err := s.relay.FlushAll(ctx, s.now().Add(-s.grace))
	res.Published += n
	return res, errors.Join(append(errs, err)...)
}

// maxAttempts bounds the re-reads when orders of the same tenant keep landing between our
// read and our append.
const maxAttempts = 20

// sweepTenant closes tenant's resting orders that a bar crossed or the close ended. Each
// close is a compare-and-set on the stream position of the projection it was decided on,
// so a concurrent sweep (another replica, a redelivered tick) or a new order makes it fail
// and the sweep decides again from the new state: every order closes once.
func (s *sweeper) sweepTenant(ctx context.Context, tenant string, cache map[string][]timedBar, res *Result) error {
	var errs []error
	type published struct {
		o trading.Order
		e ledger.Event
	}
	var fills []published
	for range maxAttempts {
		p, err := s.ledger.Project(ctx, tenant)
		if err != nil {
			return err
		}
		resting := p.Resting()
		if len(resting) == 0 {
			break
		}
		now := s.now()
		errs = errs[:0]
		moved := false
		for _, o := range resting {
			bars, err := s.minuteBars(ctx, o.Symbol, cache)
			if err != nil {
				errs = append(errs, fmt.Errorf("order %s: %w", o.ID, err))
				continue
			}
			ev := s.decide(p, o, bars, now)
			if ev == nil {
				continue
			}
			id, err := s.ledger.AppendClose(ctx, tenant, o.ID, p.LastID, *ev)
			if errors.Is(err, ledger.ErrConflict) || errors.Is(err, ledger.ErrExists) {
				moved = true
				break
			}
			if err != nil {
				return err
			}
			ev.ID = id
			_ = p.Apply(*ev) // later orders of this pass see the new cash and positions
			switch ev.Type {
			case ledger.OrderFilled:
				res.Filled++
				fills = append(fills, published{o.Order, *ev})
			case ledger.OrderExpired:
				res.Expired++
			case ledger.OrderCancelled:
				res.Cancelled++
			}
			s.log.InfoContext(ctx, "resting order closed", "tenant", tenant, "order_id", o.ID, "event", ev.Type, "entry", id)
		}
		if !moved {
			break
		}
	}
	for _, f := range fills {
		if err := s.relay.Publish(ctx, tenant, f.o, f.e); err != nil {
			// In the outbox: the next pass sends it.
			s.log.WarnContext(ctx, "order.filled not published yet", "order_id", f.o.ID, "err", err)
		} else {
			res.Published++
		}
	}
	return errors.Join(errs...)
}

func (s *sweeper) minuteBars(ctx context.Context, symbol string, cache map[string][]timedBar) ([]timedBar, error) {
	if b, ok := cache[symbol]; ok {
		return b, nil
	}
	raw, err := s.bars.MinuteBars(ctx, symbol)
	if err != nil {
		return nil, err
	}
	out := make([]timedBar, 0, len(raw))
	for _, b := range raw {
		if b.Open <= 0 || b.High <= 0 || b.Low <= 0 {
			continue // a halted minute
		}
		out = append(out, timedBar{Start: b.Time, Bar: trading.Bar{Open: price(b.Open), High: price(b.High), Low: price(b.Low)}})
	}
	cache[symbol] = out
	return out, nil
}

// barLength is the interval of the bars the sweep reads.
const barLength = time.Minute

// decide returns the event that closes resting order o at now, or nil while it rests. Only
// bars that started at or after the order was accepted and ended by now (and by the order's
// expiry) count: the market must have reached the limit after the order existed. The first
// such bar that crosses fills the order, so every sweep that decides reaches the same fill.
func (s *sweeper) decide(p *ledger.Projection, o *ledger.OrderView, bars []timedBar, now time.Time) *ledger.Event {
	end := now
	expired := !o.ExpiresAt.IsZero() && !now.Before(o.ExpiresAt)
	if expired {
		end = o.ExpiresAt
	}
	topix := s.universe.TOPIX500(o.Symbol)
	for _, b := range bars {
		if b.Start.Before(o.CreatedAt) {
			continue
		}
		closed := b.Start.Add(barLength)
		if closed.After(end) {
			break
		}
		f := trading.SimulateBar(o.Order, b.Bar, topix, s.costs)
		if f == nil {
			continue
		}
		at := closed.UTC()
		// The account may have changed since the order was accepted: the fill must pass the
		// same checks as an order placed now (the order itself no longer counts as resting).
		if rej := trading.CheckRisk(s.limits, p.Book(at), o.Order, f.Price, f.Fee, false); rej != nil {
			return &ledger.Event{Type: ledger.OrderCancelled, At: at, OrderID: o.ID, Rejection: rej}
		}
		return &ledger.Event{Type: ledger.OrderFilled, At: at, OrderID: o.ID, Fill: f}
	}
	if expired {
		return &ledger.Event{Type: ledger.OrderExpired, At: o.ExpiresAt.UTC(), OrderID: o.ID}
	}
	return nil
}

// price converts a provider's float price to decimal (two places remove float noise; the
// finest TSE tick is 0.1).
func price(f float64) decimal.Decimal { return decimal.NewFromFloat(f).Round(2) }

// timedBar is a bar with the minute it started.
type timedBar struct {
	Start time.Time
	trading.Bar
}
