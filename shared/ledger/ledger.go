// Package ledger is the paper-trading order ledger, event-sourced on a Redis Stream per
// tenant (exec:ledger:{tenant}). The stream is the only truth: OrderAccepted, OrderFilled,
// OrderRejected and CashDeposited events, appended atomically per order and never edited.
// Positions, cash, P&L and the order list are a Projection folded from the stream; a
// snapshot of it is cached in Redis and caught up from the stream on every read, and
// Rebuild folds the whole stream from scratch, giving the same result.
//
// Appends are keyed by order id: an order's events go in at most once (a second append for
// the same id reports ErrExists), so a retried request whose first attempt crashed after
// appending finds its order instead of placing another. Appends also name the stream
// position the caller's decision was based on (optimistic concurrency), so two concurrent
// orders of one tenant cannot both pass a risk check that only one of them would.
package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

// Type is an event type.
type Type string

// Event types. New types may be added; a projection ignores types it does not know.
const (
	CashDeposited Type = "CashDeposited"
	OrderAccepted Type = "OrderAccepted"
	OrderFilled   Type = "OrderFilled"
	OrderRejected Type = "OrderRejected"
	// OrderExpired ends a resting day order at the session's close.
	OrderExpired Type = "OrderExpired"
	// OrderCancelled ends a resting order the market crossed but a risk rule, re-checked at
	// the fill, refused (Rejection says which).
	OrderCancelled Type = "OrderCancelled"
)

// Event is one ledger entry. Which fields are set depends on Type.
type Event struct {
	// ID is the stream entry id, set when read; it orders events.
	ID      string    `json:"-"`
	Type    Type      `json:"type"`
	At      time.Time `json:"at"`
	OrderID string    `json:"order_id,omitempty"`
	// RequestHash fingerprints the request that placed the order (OrderAccepted,
	// OrderRejected), so a retry with the same key but another body is told apart.
	RequestHash string             `json:"request_hash,omitempty"`
	Order       *trading.Order     `json:"order,omitempty"`
	Fill        *trading.Fill      `json:"fill,omitempty"`
	Rejection   *trading.Rejection `json:"rejection,omitempty"`
	Amount      *decimal.Decimal   `json:"amount,omitempty"` // CashDeposited
}

var (
	// ErrExists: the order id already has events; read them instead of appending.
	ErrExists = errors.New("ledger: order already recorded")
	// ErrConflict: the stream moved past the position the append was based on; re-read and
	// decide again.
	ErrConflict = errors.New("ledger: stream moved since it was read")
)

// Start is the stream position before the first event.
const Start = "0-0"

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidTenant reports whether t can name a tenant's ledger.
func ValidTenant(t string) bool { return tenantRE.MatchString(t) }

// OrderID derives the order id from the tenant and the request's idempotency key, so the
// same request always names the same order, across replicas and crashes.
func OrderID(tenant, idempotencyKey string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + idempotencyKey))
	return "ord_" + hex.EncodeToString(h[:12])
}

// Ledger reads and appends tenants' ledgers.
type Ledger struct {
	rdb  redis.UniversalClient
	keys store.Keys
}

// New returns a Ledger keeping its streams in keys' space (the execution service's "exec").
func New(rdb redis.UniversalClient, keys store.Keys) *Ledger {
	return &Ledger{rdb: rdb, keys: keys}
}

// The tenant sits in a hash tag so that a tenant's keys share a Redis Cluster slot, as the
// append script needs.
func (l *Ledger) streamKey(tenant string) string { return l.keys.Key("ledger", "{"+tenant+"}") }
func (l *Ledger) indexKey(tenant string) string {
	return l.keys.Key("ledger", "{"+tenant+"}", "orders")
}
func (l *Ledger) snapKey(tenant string) string {
	return l.keys.Key("ledger", "{"+tenant+"}", "snapshot")
}
func (l *Ledger) outboxKey(tenant string) string {
	return l.keys.Key("ledger", "{"+tenant+"}", "outbox")
}

// tenantsKey is the set of tenants that have a ledger: the fill sweep and the outbox relay
// walk it. It lies outside every tenant's slot, so it is written before the append script,
// never inside it; a tenant listed without a ledger is harmless.
func (l *Ledger) tenantsKey() string { return l.keys.Key("ledger", "tenants") }

// closeField is the order index's marker of an order's terminal event (filled after
// resting, expired or cancelled): AppendClose writes it, so an order closes at most once.
func closeField(orderID string) string { return orderID + "#closed" }

// appendScript appends ARGV[4..] as entries of stream KEYS[1] unless field ARGV[1] is in
// index KEYS[2] ("exists") or the stream's last id is not ARGV[2] ("conflict"). Entry i goes
// into outbox KEYS[3] (scored by its stream time in ms) when character i of ARGV[3] is '1'.
// Lua runs atomically, so the check, the append and the outbox cannot interleave with
// another append or be half done.
var appendScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {'exists'} end
local last = '0-0'
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then last = top[1][1] end
if last ~= ARGV[2] then return {'conflict', last} end
local id
for i = 4, #ARGV do
  id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  if string.sub(ARGV[3], i - 3, i - 3) == '1' then
    redis.call('ZADD', KEYS[3], tonumber(string.match(id, '^(%d+)')), id)
  end
end
redis.call('HSET', KEYS[2], ARGV[1], id)
return {'ok', id}
`)

// Append adds evs, all about order orderID, to tenant's ledger if the stream is still at
// expectLast (Start for an empty one) and the order has no events yet. It returns the id of
// the last appended entry.
func (l *Ledger) Append(ctx context.Context, tenant, orderID, expectLast string, evs ...Event) (string, error) {
	return l.append(ctx, tenant, orderID, expectLast, evs)
}

// AppendClose records ev, the terminal event of resting order orderID (OrderFilled,
// OrderExpired or OrderCancelled), if the stream is still at expectLast and the order was
// not closed before: a compare-and-set on the order's state, so repeated sweeps and
// concurrent replicas close an order exactly once. It returns the entry's id.
func (l *Ledger) AppendClose(ctx context.Context, tenant, orderID, expectLast string, ev Event) (string, error) {
	switch ev.Type {
	case OrderFilled, OrderExpired, OrderCancelled:
	default:
		return "", fmt.Errorf("ledger: %s does not close an order", ev.Type)
	}
	return l.append(ctx, tenant, closeField(orderID), expectLast, []Event{ev})
}

func (l *Ledger) append(ctx context.Context, tenant, field, expectLast string, evs []Event) (string, error) {
	if !ValidTenant(tenant) {
		return "", fmt.Errorf("ledger: invalid tenant %q", tenant)
	}
	if len(evs) == 0 {
		return "", errors.New("ledger: nothing to append")
	}
	mask := make([]byte, len(evs))
	args := []any{field, expectLast, ""}
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			return "", err
		}
		args = append(args, b)
		mask[i] = '0'
		if e.Type == OrderFilled {
			mask[i] = '1'
		}
	}
	args[2] = string(mask)
	if err := l.rdb.SAdd(ctx, l.tenantsKey(), tenant).Err(); err != nil {
		return "", fmt.Errorf("ledger: register tenant: %w", err)
	}
	res, err := appendScript.Run(ctx, l.rdb, []string{l.streamKey(tenant), l.indexKey(tenant), l.outboxKey(tenant)}, args...).StringSlice()
	if err != nil {
		return "", fmt.Errorf("ledger: append: %w", err)
	}
	switch res[0] {
	case "ok":
		return res[1], nil
	case "exists":
		return "", ErrExists
	default:
		return "", ErrConflict
	}
}

// Tenants lists the tenants that have a ledger.
func (l *Ledger) Tenants(ctx context.Context) ([]string, error) {
	ts, err := l.rdb.SMembers(ctx, l.tenantsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("ledger: tenants: %w", err)
	}
	return ts, nil
}

// pageSize bounds one XRANGE read.
const pageSize = 512

// Events calls fn for each of tenant's events after stream id after (Start for all), in
// order.
func (l *Ledger) Events(ctx context.Context, tenant, after string, fn func(Event) error) error {
	key := l.streamKey(tenant)
	for {
		msgs, err := l.rdb.XRangeN(ctx, key, "("+after, "+", pageSize).Result()
		if err != nil {
			return fmt.Errorf("ledger: read: %w", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["e"].(string)
			var e Event
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				return fmt.Errorf("ledger: entry %s: %w", m.ID, err)
			}
			e.ID = m.ID
			if err := fn(e); err != nil {
				return err
			}
			after = m.ID
		}
		if len(msgs) < pageSize {
			return nil
		}
	}
}

// Rebuild folds tenant's whole stream into a fresh projection, ignoring any snapshot.
func (l *Ledger) Rebuild(ctx context.Context, tenant string) (*Projection, error) {
	p := NewProjection()
	if err := l.Events(ctx, tenant, Start, p.Apply); err != nil {
		return nil, err
	}
	return p, nil
}

// Project returns tenant's current projection: the cached snapshot caught up with the
// events appended since, saved back when it moved. A missing or unreadable snapshot is
// rebuilt from the stream.
func (l *Ledger) Project(ctx context.Context, tenant string) (*Projection, error) {
	p := NewProjection()
	raw, err := l.rdb.Get(ctx, l.snapKey(tenant)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return nil, fmt.Errorf("ledger: snapshot: %w", err)
	default:
		var snap Projection
		if json.Unmarshal(raw, &snap) == nil && snap.Version == projectionVersion {
			snap.init()
			p = &snap
		}
	}
	from := p.LastID
	if err := l.Events(ctx, tenant, from, p.Apply); err != nil {
		return nil, err
	}
	if p.LastID != from {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		// An older snapshot may overwrite a newer one under a race; both are consistent
		// states of the stream, so the next read only catches up further.
		if err := l.rdb.Set(ctx, l.snapKey(tenant), b, 0).Err(); err != nil {
			return nil, fmt.Errorf("ledger: save snapshot: %w", err)
		}
	}
	return p, nil
}

// DropSnapshot deletes tenant's cached projection (the next Project rebuilds it).
func (l *Ledger) DropSnapshot(ctx context.Context, tenant string) error {
	return l.rdb.Del(ctx, l.snapKey(tenant)).Err()
}

// Fills counts tenant's OrderFilled events for orderID ("" for all): the test of "no order
// filled twice" reads the stream, not a projection.
func (l *Ledger) Fills(ctx context.Context, tenant, orderID string) (int, error) {
	n := 0
	err := l.Events(ctx, tenant, Start, func(e Event) error {
		if e.Type == OrderFilled && (orderID == "" || e.OrderID == orderID) {
			n++
		}
		return nil
	})
	return n, err
}
