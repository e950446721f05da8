package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/trading"
)

// Publisher sends one CloudEvent under an id the caller chose (events.Publisher.PublishID).
type Publisher interface {
	PublishID(ctx context.Context, id, typ, source, subject string, data any) (string, error)
}

// FillEventID is the CloudEvent id of the fill recorded at stream entry entryID of tenant's
// ledger. It is a function of the entry alone, so every publisher of that fill (the request
// that placed the order, the fill sweep, a relay pass after a crash) sends the same id and
// the receivers' (source, id) dedup keeps exactly one.
func FillEventID(tenant, entryID string) string { return "fill." + tenant + "." + entryID }

// FillSource is the CloudEvent source of every fill, whoever publishes it: the ledger's
// producer, so that the dedup key is the same for all of them.
const FillSource = events.SourceExecutionTrade

// Unpublished returns the stream ids of tenant's fills still in the outbox that were
// recorded before before, oldest first, at most limit.
func (l *Ledger) Unpublished(ctx context.Context, tenant string, before time.Time, limit int64) ([]string, error) {
	ids, err := l.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: l.outboxKey(tenant), ByScore: true, Start: "-inf", Stop: "(" + strconv.FormatInt(before.UnixMilli(), 10),
		Count: limit,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: outbox: %w", err)
	}
	return ids, nil
}

// MarkPublished takes entryID out of tenant's outbox.
func (l *Ledger) MarkPublished(ctx context.Context, tenant, entryID string) error {
	if err := l.rdb.ZRem(ctx, l.outboxKey(tenant), entryID).Err(); err != nil {
		return fmt.Errorf("ledger: outbox: %w", err)
	}
	return nil
}

// Entry reads one event of tenant's ledger by stream id.
func (l *Ledger) Entry(ctx context.Context, tenant, entryID string) (Event, error) {
	msgs, err := l.rdb.XRangeN(ctx, l.streamKey(tenant), entryID, entryID, 1).Result()
	if err != nil {
		return Event{}, fmt.Errorf("ledger: read: %w", err)
	}
	if len(msgs) == 0 {
		return Event{}, fmt.Errorf("ledger: entry %s: %w", entryID, errNoEntry)
	}
	raw, _ := msgs[0].Values["e"].(string)
	var e Event
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return Event{}, fmt.Errorf("ledger: entry %s: %w", entryID, err)
	}
	e.ID = entryID
	return e, nil
}

var errNoEntry = errors.New("no such entry")

// Relay publishes the outbox's fills as com.daytrade.execution.order.filled. Publishing is at
// least once: an entry leaves the outbox only after its event was accepted by the sink, so a
// crash in between sends it again, with the same id.
type Relay struct {
	Ledger *Ledger
	Pub    Publisher // nil: fills stay in the outbox until a publisher is configured
	Log    *slog.Logger
}

// FillEvent is the payload published for fill e of order o.
func FillEvent(tenant string, o trading.Order, e Event) events.OrderFilled {
	f := e.Fill
	return events.OrderFilled{
		OrderID: o.ID, Tenant: tenant, Symbol: o.Symbol, Side: string(o.Side),
		Quantity: decimal.NewFromInt(f.Quantity), Price: f.Price, Fee: f.Fee,
		Currency: "JPY", Partial: f.Quantity < o.Quantity, FilledAt: e.At,
	}
}

// Publish sends fill e (an entry read back from the ledger, ID set) of order o and takes it
// out of the outbox.
func (r Relay) Publish(ctx context.Context, tenant string, o trading.Order, e Event) error {
	if r.Pub == nil {
		return nil
	}
	if e.Type != OrderFilled || e.Fill == nil || e.ID == "" {
		return fmt.Errorf("ledger: entry %q is not a recorded fill", e.ID)
	}
	if _, err := r.Pub.PublishID(ctx, FillEventID(tenant, e.ID), events.TypeExecutionOrderFilled, FillSource, o.ID, FillEvent(tenant, o, e)); err != nil {
		return err
	}
	return r.Ledger.MarkPublished(ctx, tenant, e.ID)
}

// relayBatch bounds the fills one Flush publishes for a tenant; the rest wait for the next.
const relayBatch = 256

// Flush publishes tenant's fills recorded before before that are still in the outbox,
// oldest first, stopping at the first failure (the rest wait for the next pass). Callers
// pass a before a little in the past so that a fill whose own request is publishing it
// right now is left to that request. It returns how many it published.
func (r Relay) Flush(ctx context.Context, tenant string, before time.Time) (int, error) {
	if r.Pub == nil {
		return 0, nil
	}
	ids, err := r.Ledger.Unpublished(ctx, tenant, before, relayBatch)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	p, err := r.Ledger.Project(ctx, tenant)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		e, err := r.Ledger.Entry(ctx, tenant, id)
		if errors.Is(err, errNoEntry) {
			// Trimmed from the stream (never done today): nothing left to publish.
			_ = r.Ledger.MarkPublished(ctx, tenant, id)
			continue
		}
		if err != nil {
			return n, err
		}
		o := p.Orders[e.OrderID]
		if o == nil || e.Fill == nil {
			if r.Log != nil {
				r.Log.ErrorContext(ctx, "outbox entry is not a fill of a known order; dropped", "tenant", tenant, "entry", id)
			}
			_ = r.Ledger.MarkPublished(ctx, tenant, id)
			continue
		}
		if err := r.Publish(ctx, tenant, o.Order, e); err != nil {
			return n, fmt.Errorf("ledger: publish fill %s of %s: %w", id, tenant, err)
		}
		n++
	}
	return n, nil
}

// FlushAll runs Flush for every tenant, going on past a tenant that fails; it returns the
// total published and the failures joined.
func (r Relay) FlushAll(ctx context.Context, before time.Time) (int, error) {
	tenants, err := r.Ledger.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, t := range tenants {
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		n, err := r.Flush(ctx, t, before)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}
