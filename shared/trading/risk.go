package trading

import (
	"github.com/shopspring/decimal"
)

// Limits are an account's pre-trade risk limits. A zero limit disables its check.
type Limits struct {
	// MaxPositionPct caps the value of one symbol's position after the order, in percent of
	// equity.
	MaxPositionPct decimal.Decimal
	// MaxExposurePct caps the gross value of all positions after the order, in percent of
	// equity.
	MaxExposurePct decimal.Decimal
	// DailyLossLimit is the day's loss (Book.DayPnL: realised and unrealised, net of fees,
	// in yen, as a positive number) after which the day's orders may only reduce positions.
	DailyLossLimit decimal.Decimal
	// MaxOpenOrders caps resting (unfilled) orders.
	MaxOpenOrders int
}

// Holding is one position as the risk checks see it.
type Holding struct {
	Quantity int64
	// Mark is the price the position is valued at: the market's last price where a quote
	// could be had, else the last fill price.
	Mark decimal.Decimal
}

// Book is the account state the risk checks read (built from the ledger's projection and,
// for the marks, market quotes).
type Book struct {
	Cash       decimal.Decimal
	Holdings   map[string]Holding
	OpenOrders int
	// DayPnL is the JST day's P&L marked to market: the change in equity since the previous
	// session's close, net of deposits (today's realised P&L net of fees plus today's change
	// in unrealised P&L). A loss is negative.
	DayPnL decimal.Decimal
}

// Equity is cash plus every holding at its mark.
func (b Book) Equity() decimal.Decimal {
	eq := b.Cash
	for _, h := range b.Holdings {
		eq = eq.Add(h.Mark.Mul(decimal.NewFromInt(h.Quantity)))
	}
	return eq
}

var hundred = decimal.NewFromInt(100)

// CheckRisk runs the pre-trade checks for order o at the estimated price est with fee fee,
// where rests says the order will not fill now. The order's own symbol is valued at est.
// It returns the first rule the order breaks, or nil.
func CheckRisk(l Limits, b Book, o Order, est, fee decimal.Decimal, rests bool) *Rejection {
	if rests && l.MaxOpenOrders > 0 && b.OpenOrders >= l.MaxOpenOrders {
		return reject(RuleMaxOpenOrders, "%d orders are already open (limit %d)", b.OpenOrders, l.MaxOpenOrders)
	}
	held := b.Holdings[o.Symbol].Quantity
	if o.Side == Sell {
		if o.Quantity > held {
			return reject(RuleShortSelling, "selling %d shares of %s but holding %d (no short selling)", o.Quantity, o.Symbol, held)
		}
		return nil // a sell only reduces risk
	}
	if l.DailyLossLimit.IsPositive() && b.DayPnL.LessThanOrEqual(l.DailyLossLimit.Neg()) {
		return reject(RuleDailyLoss, "today's loss %s (realised and unrealised, net of fees) has reached the limit %s; only reducing orders are taken", b.DayPnL.Neg(), l.DailyLossLimit)
	}
	qty := decimal.NewFromInt(o.Quantity)
	cost := est.Mul(qty).Add(fee)
	if cost.GreaterThan(b.Cash) {
		return reject(RuleBuyingPower, "the order needs %s but cash is %s", cost, b.Cash)
	}
	equity := b.Equity()
	if !equity.IsPositive() {
		return reject(RuleMaxExposure, "equity %s is not positive", equity)
	}
	after := est.Mul(decimal.NewFromInt(held + o.Quantity))
	if l.MaxPositionPct.IsPositive() {
		if max := equity.Mul(l.MaxPositionPct).Div(hundred); after.GreaterThan(max) {
			return reject(RuleMaxPosition, "position in %s would be %s, above %s%% of equity (%s)", o.Symbol, after, l.MaxPositionPct, max.Round(0))
		}
	}
	if l.MaxExposurePct.IsPositive() {
		gross := after
		for sym, h := range b.Holdings {
			if sym != o.Symbol {
				gross = gross.Add(h.Mark.Mul(decimal.NewFromInt(h.Quantity)))
			}
		}
		if max := equity.Mul(l.MaxExposurePct).Div(hundred); gross.GreaterThan(max) {
			return reject(RuleMaxExposure, "gross exposure would be %s, above %s%% of equity (%s)", gross, l.MaxExposurePct, max.Round(0))
		}
	}
	return nil
}
