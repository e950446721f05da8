package ledger

import (
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/trading"
)

// Where a position's mark came from.
const (
	// MarkMarket: the market-data provider's last price (trading.Quote.Last).
	MarkMarket = "market"
	// MarkLastFill: no quote could be had (provider down, too slow, symbol unknown to it),
	// so the position is valued at the ledger's last fill price in the symbol.
	MarkLastFill = "last_fill"
)

// Marking is a read-time view: quotes value the projection at an instant and are never
// written to the ledger, so the fold stays a pure, replayable function of the events.

// MarkSymbols lists, sorted, the symbols a valuation at now needs quotes for: every open
// position, and every symbol filled on now's JST day (whose previous close is the base of
// the day's P&L even after it was sold).
func (p *Projection) MarkSymbols(now time.Time) []string {
	set := map[string]bool{}
	for sym, pos := range p.Positions {
		if pos.Quantity > 0 {
			set[sym] = true
		}
	}
	for sym := range p.dayFlows(now) {
		set[sym] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// mark is how one symbol is valued at an instant.
type mark struct {
	price decimal.Decimal
	// base is the symbol's value at the start of the day: the previous session's close, or
	// price itself when there is no quote (no move is counted for shares carried in).
	base   decimal.Decimal
	at     time.Time
	source string
}

// flow is one symbol's fills on one JST day.
type flow struct {
	bought, sold                 int64
	boughtNotional, soldNotional decimal.Decimal
}

// dayFlows sums the fills of now's JST day by symbol. Fills are whole (one OrderFilled per
// order), so an order's filled quantity, notional and fill time are its one fill's.
func (p *Projection) dayFlows(now time.Time) map[string]*flow {
	today := dayKey(now)
	out := map[string]*flow{}
	for _, o := range p.Orders {
		if o.FilledQuantity == 0 || dayKey(o.FilledAt) != today {
			continue
		}
		f := out[o.Symbol]
		if f == nil {
			f = &flow{}
			out[o.Symbol] = f
		}
		if o.Side == trading.Buy {
			f.bought += o.FilledQuantity
			f.boughtNotional = f.boughtNotional.Add(o.Notional)
		} else {
			f.sold += o.FilledQuantity
			f.soldNotional = f.soldNotional.Add(o.Notional)
		}
	}
	return out
}

// lastFills is each symbol's latest fill time.
func (p *Projection) lastFills() map[string]time.Time {
	out := map[string]time.Time{}
	for _, o := range p.Orders {
		if o.FilledQuantity > 0 && o.FilledAt.After(out[o.Symbol]) {
			out[o.Symbol] = o.FilledAt
		}
	}
	return out
}

// valuation is the projection marked at an instant.
type valuation struct {
	marks  map[string]mark // by symbol, for every MarkSymbols symbol
	dayPnL decimal.Decimal
}

// value marks every symbol of MarkSymbols(now) with its quote when quotes has one (a
// missing quote falls back to the last fill) and computes the day's P&L.
//
// The day is now's JST calendar date, the key of Days. Its P&L is the change in equity
// since the previous session's close, net of deposits: for each symbol,
//
//	held now × mark − held at the day's start × previous close + sold today − bought today
//
// summed, less today's fees. That is today's realised P&L net of fees plus today's change
// in unrealised P&L; a position bought and sold within the day counts its realised loss,
// one still open its loss to the mark.
func (p *Projection) value(now time.Time, quotes map[string]trading.Quote) valuation {
	flows := p.dayFlows(now)
	fills := p.lastFills()
	v := valuation{marks: map[string]mark{}}
	for _, sym := range p.MarkSymbols(now) {
		m := mark{source: MarkLastFill, at: fills[sym]}
		if pos := p.Positions[sym]; pos != nil {
			m.price = pos.Mark
		}
		m.base = m.price
		if q, ok := quotes[sym]; ok && q.Last.IsPositive() {
			m.price, m.at, m.source = q.Last, q.At, MarkMarket
			m.base = q.Last
			if q.PrevClose.IsPositive() {
				m.base = q.PrevClose
			}
		}
		v.marks[sym] = m

		var held int64
		if pos := p.Positions[sym]; pos != nil {
			held = pos.Quantity
		}
		f := flows[sym]
		if f == nil {
			f = &flow{}
		}
		start := held - f.bought + f.sold
		v.dayPnL = v.dayPnL.
			Add(m.price.Mul(decimal.NewFromInt(held))).
			Sub(m.base.Mul(decimal.NewFromInt(start))).
			Add(f.soldNotional).Sub(f.boughtNotional)
	}
	if d := p.Days[dayKey(now)]; d != nil {
		v.dayPnL = v.dayPnL.Sub(d.Fees)
	}
	return v
}

// MarkedBook is the projection as the risk checks read it at instant now, every holding
// valued at its quote in quotes (at its last fill price where quotes has none) and DayPnL
// marked to market (see value).
func (p *Projection) MarkedBook(now time.Time, quotes map[string]trading.Quote) trading.Book {
	v := p.value(now, quotes)
	b := trading.Book{Cash: p.Cash, Holdings: map[string]trading.Holding{}, DayPnL: v.dayPnL}
	for sym, pos := range p.Positions {
		if pos.Quantity > 0 {
			b.Holdings[sym] = trading.Holding{Quantity: pos.Quantity, Mark: v.marks[sym].price}
		}
	}
	for _, o := range p.Orders {
		if o.Open(now) {
			b.OpenOrders++
		}
	}
	return b
}

// Book is MarkedBook without quotes: every holding at its last fill price.
func (p *Projection) Book(now time.Time) trading.Book { return p.MarkedBook(now, nil) }
