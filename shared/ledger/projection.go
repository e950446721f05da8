package ledger

import (
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/trading"
)

// Order statuses.
const (
	StatusOpen     = "open"     // accepted, resting, not (fully) filled
	StatusFilled   = "filled"   // filled in full
	StatusRejected = "rejected" // refused by a risk rule
	// StatusExpired: a resting day order the session's close ended unfilled.
	StatusExpired = "expired"
	// StatusCancelled: a resting order the market crossed but a risk rule refused at the fill.
	StatusCancelled = "cancelled"
)

// OrderView is an order as the API shows it, folded from its events.
type OrderView struct {
	trading.Order
	Status         string             `json:"status"`
	FilledQuantity int64              `json:"filled_quantity"`
	AveragePrice   *decimal.Decimal   `json:"average_price,omitempty"`
	Notional       decimal.Decimal    `json:"notional"`
	Fee            decimal.Decimal    `json:"fee"`
	Rejection      *trading.Rejection `json:"rejection,omitempty"`
	CreatedAt      time.Time          `json:"created_at"`
	FilledAt       time.Time          `json:"filled_at,omitzero"`
	// ClosedAt is when an OrderExpired or OrderCancelled ended the order.
	ClosedAt time.Time `json:"closed_at,omitzero"`
}

// Open reports whether the order still rests at now (TSE orders are day orders).
func (o *OrderView) Open(now time.Time) bool {
	return o.Status == StatusOpen && (o.ExpiresAt.IsZero() || now.Before(o.ExpiresAt))
}

// Position is a long holding in one symbol (the paper account is a cash account).
type Position struct {
	Symbol   string          `json:"symbol"`
	Quantity int64           `json:"quantity"`
	AvgCost  decimal.Decimal `json:"average_cost"`
	// Mark is the last fill price in the symbol: what the ledger knows without market data.
	// Valuations mark positions to market at read time instead (Summary, MarkedBook); the
	// projection itself never holds a market price.
	Mark        decimal.Decimal `json:"mark"`
	RealizedPnL decimal.Decimal `json:"realized_pnl"`
}

// Day is one JST calendar date's realised results (the day's marked P&L adds the
// change in unrealised P&L at read time: see value).
type Day struct {
	RealizedPnL decimal.Decimal `json:"realized_pnl"`
	Fees        decimal.Decimal `json:"fees"`
}

// projectionVersion changes when the fold changes, so old snapshots are rebuilt.
const projectionVersion = 2

// Projection is the state folded from a ledger: cash, positions, realised P&L and fees (in
// total and per JST day), and every order. Its JSON is its snapshot form.
type Projection struct {
	Version     int                   `json:"version"`
	LastID      string                `json:"last_id"`
	Events      int64                 `json:"events"`
	Deposited   decimal.Decimal       `json:"deposited"`
	Cash        decimal.Decimal       `json:"cash"`
	RealizedPnL decimal.Decimal       `json:"realized_pnl"`
	Fees        decimal.Decimal       `json:"fees"`
	Positions   map[string]*Position  `json:"positions"`
	Orders      map[string]*OrderView `json:"orders"`
	// OrderIDs lists orders in the order they were recorded.
	OrderIDs      []string          `json:"order_ids"`
	RequestHashes map[string]string `json:"request_hashes"`
	Days          map[string]*Day   `json:"days"`
}

// NewProjection is the state of an empty ledger.
func NewProjection() *Projection {
	p := &Projection{Version: projectionVersion, LastID: Start}
	p.init()
	return p
}

func (p *Projection) init() {
	if p.Positions == nil {
		p.Positions = map[string]*Position{}
	}
	if p.Orders == nil {
		p.Orders = map[string]*OrderView{}
	}
	if p.RequestHashes == nil {
		p.RequestHashes = map[string]string{}
	}
	if p.Days == nil {
		p.Days = map[string]*Day{}
	}
	if p.OrderIDs == nil {
		p.OrderIDs = []string{}
	}
}

func dayKey(t time.Time) string { return t.In(market.JST).Format(time.DateOnly) }

func (p *Projection) day(t time.Time) *Day {
	k := dayKey(t)
	d := p.Days[k]
	if d == nil {
		d = &Day{}
		p.Days[k] = d
	}
	return d
}

// Apply folds one event into the projection. It never fails on a well-formed stream; an
// event about an unknown order is skipped rather than invented.
func (p *Projection) Apply(e Event) error {
	p.LastID = e.ID
	p.Events++
	switch e.Type {
	case CashDeposited:
		if e.Amount != nil {
			p.Cash = p.Cash.Add(*e.Amount)
			p.Deposited = p.Deposited.Add(*e.Amount)
		}
	case OrderAccepted, OrderRejected:
		if e.Order == nil {
			return nil
		}
		v := &OrderView{Order: *e.Order, Status: StatusOpen, CreatedAt: e.At}
		if e.Type == OrderRejected {
			v.Status, v.Rejection = StatusRejected, e.Rejection
		}
		if _, dup := p.Orders[e.OrderID]; !dup {
			p.OrderIDs = append(p.OrderIDs, e.OrderID)
		}
		p.Orders[e.OrderID] = v
		p.RequestHashes[e.OrderID] = e.RequestHash
	case OrderFilled:
		o := p.Orders[e.OrderID]
		if o == nil || e.Fill == nil {
			return nil
		}
		p.applyFill(o, e.Fill, e.At)
	case OrderExpired, OrderCancelled:
		o := p.Orders[e.OrderID]
		if o == nil || o.Status != StatusOpen {
			return nil
		}
		o.Status, o.ClosedAt = StatusExpired, e.At
		if e.Type == OrderCancelled {
			o.Status, o.Rejection = StatusCancelled, e.Rejection
		}
	}
	return nil
}

// Resting returns the open orders, oldest first: the ones a fill sweep looks at.
func (p *Projection) Resting() []*OrderView {
	var out []*OrderView
	for _, id := range p.OrderIDs {
		if o := p.Orders[id]; o != nil && o.Status == StatusOpen {
			out = append(out, o)
		}
	}
	return out
}

func (p *Projection) applyFill(o *OrderView, f *trading.Fill, at time.Time) {
	qty := decimal.NewFromInt(f.Quantity)
	notional := f.Notional()
	prevFilled := decimal.NewFromInt(o.FilledQuantity)
	avg := notional
	if o.AveragePrice != nil {
		avg = o.AveragePrice.Mul(prevFilled).Add(notional)
	}
	o.FilledQuantity += f.Quantity
	avg = avg.Div(decimal.NewFromInt(o.FilledQuantity))
	o.AveragePrice = &avg
	o.Notional = o.Notional.Add(notional)
	o.Fee = o.Fee.Add(f.Fee)
	o.FilledAt = at
	if o.FilledQuantity >= o.Quantity {
		o.Status = StatusFilled
	}

	pos := p.Positions[o.Symbol]
	if pos == nil {
		pos = &Position{Symbol: o.Symbol}
		p.Positions[o.Symbol] = pos
	}
	d := p.day(at)
	p.Fees = p.Fees.Add(f.Fee)
	d.Fees = d.Fees.Add(f.Fee)
	pos.Mark = f.Price
	switch o.Side {
	case trading.Buy:
		held := decimal.NewFromInt(pos.Quantity)
		pos.AvgCost = pos.AvgCost.Mul(held).Add(notional).Div(held.Add(qty))
		pos.Quantity += f.Quantity
		p.Cash = p.Cash.Sub(notional).Sub(f.Fee)
	case trading.Sell:
		realized := f.Price.Sub(pos.AvgCost).Mul(qty)
		pos.RealizedPnL = pos.RealizedPnL.Add(realized)
		p.RealizedPnL = p.RealizedPnL.Add(realized)
		d.RealizedPnL = d.RealizedPnL.Add(realized)
		pos.Quantity -= f.Quantity
		p.Cash = p.Cash.Add(notional).Sub(f.Fee)
		if pos.Quantity == 0 {
			pos.AvgCost = decimal.Zero
		}
	}
}

// Summary is the account overview served by GET /api/v1/execution/positions: the
// projection valued at an instant, each open position at its mark.
type Summary struct {
	Cash      decimal.Decimal `json:"cash"`
	Deposited decimal.Decimal `json:"deposited"`
	// MarketValue is the open positions at their marks: the account's gross exposure (it
	// holds no shorts).
	MarketValue   decimal.Decimal `json:"market_value"`
	Equity        decimal.Decimal `json:"equity"`
	RealizedPnL   decimal.Decimal `json:"realized_pnl"`
	UnrealizedPnL decimal.Decimal `json:"unrealized_pnl"`
	Fees          decimal.Decimal `json:"fees"`
	// NetPnL is equity − deposited: realised + unrealised − fees, up to the rounding of
	// average costs.
	NetPnL decimal.Decimal `json:"net_pnl"`
	// DayPnL is the JST day's P&L marked to market, as the daily loss limit reads it.
	DayPnL decimal.Decimal `json:"day_pnl"`
	// ExposurePct is MarketValue in percent of equity, as RISK_MAX_EXPOSURE_PCT reads it;
	// absent when equity is not positive.
	ExposurePct *decimal.Decimal `json:"exposure_pct,omitempty"`
	Positions   []PositionView   `json:"positions"`
	// AsOf is the last ledger event folded in; ValuedAt the instant the marks are for.
	AsOf     string    `json:"as_of"`
	ValuedAt time.Time `json:"valued_at"`
	Events   int64     `json:"events"`
}

// PositionView is a position with its value and unrealised P&L at its mark. Its Mark is
// the price it is valued at: the market's (MarkSource "market", traded at MarkAsOf) or,
// with no quote, the last fill's (MarkSource "last_fill", MarkAsOf the fill's time).
type PositionView struct {
	Position
	MarkSource    string          `json:"mark_source"`
	MarkAsOf      time.Time       `json:"mark_as_of"`
	LastFillPrice decimal.Decimal `json:"last_fill_price"`
	MarketValue   decimal.Decimal `json:"market_value"`
	UnrealizedPnL decimal.Decimal `json:"unrealized_pnl"`
}

// Summary values the account at now, each open position at its quote in quotes or, where
// quotes has none, at its last fill price.
func (p *Projection) Summary(now time.Time, quotes map[string]trading.Quote) Summary {
	val := p.value(now, quotes)
	s := Summary{
		Cash: p.Cash, Deposited: p.Deposited, RealizedPnL: p.RealizedPnL, Fees: p.Fees, DayPnL: val.dayPnL,
		Positions: []PositionView{}, AsOf: p.LastID, ValuedAt: now.UTC(), Events: p.Events,
	}
	syms := make([]string, 0, len(p.Positions))
	for sym, pos := range p.Positions {
		if pos.Quantity > 0 {
			syms = append(syms, sym)
		}
	}
	sort.Strings(syms)
	for _, sym := range syms {
		pos := p.Positions[sym]
		m := val.marks[sym]
		q := decimal.NewFromInt(pos.Quantity)
		v := PositionView{Position: *pos, MarkSource: m.source, MarkAsOf: m.at.UTC(), LastFillPrice: pos.Mark}
		v.Mark = m.price
		v.MarketValue, v.UnrealizedPnL = m.price.Mul(q), m.price.Sub(pos.AvgCost).Mul(q)
		s.MarketValue = s.MarketValue.Add(v.MarketValue)
		s.UnrealizedPnL = s.UnrealizedPnL.Add(v.UnrealizedPnL)
		s.Positions = append(s.Positions, v)
	}
	s.Equity = s.Cash.Add(s.MarketValue)
	s.NetPnL = s.Equity.Sub(s.Deposited)
	if s.Equity.IsPositive() {
		pct := s.MarketValue.Mul(decimal.NewFromInt(100)).Div(s.Equity).Round(2)
		s.ExposurePct = &pct
	}
	return s
}

// List returns orders newest first, optionally only those with status, at most limit.
func (p *Projection) List(status string, limit int) []*OrderView {
	out := []*OrderView{}
	for i := len(p.OrderIDs) - 1; i >= 0 && len(out) < limit; i-- {
		o := p.Orders[p.OrderIDs[i]]
		if o != nil && (status == "" || o.Status == status) {
			out = append(out, o)
		}
	}
	return out
}
