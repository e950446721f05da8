package ledger

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/trading"
)

// TestDayPnLIsMarkedToMarket checks the day's P&L against hand-worked accounts: 100 7203.T
// bought on Thursday at 1,000 and carried into Friday, whose previous close is 1,500.
func TestDayPnLIsMarkedToMarket(t *testing.T) {
	thursday := time.Date(2026, 11, 19, 10, 0, 0, 0, market.JST)
	friday := time.Date(2026, 11, 20, 10, 0, 0, 0, market.JST)
	dec := decimal.NewFromInt
	quote := map[string]trading.Quote{"7203.T": {Symbol: "7203.T", Last: dec(1400), PrevClose: dec(1500), At: friday}}
	tests := map[string]struct {
		sellFriday int64 // shares sold on Friday at 1,450, fee 5
		quotes     map[string]trading.Quote
		day        int64
		mark       string
	}{
		// (1,400 − 1,500) × 100: Thursday's gain is not today's.
		"carried, marked": {quotes: quote, day: -10_000, mark: MarkMarket},
		// 50 sold 50 below the previous close, 50 held 100 below it, the fee.
		"half sold, marked": {sellFriday: 50, quotes: quote, day: -2_500 - 5_000 - 5, mark: MarkMarket},
		// Closed today: the sale against the previous close, though nothing is held.
		"all sold, marked": {sellFriday: 100, quotes: quote, day: -5_000 - 5},
		// No quote: no move is known for the carried shares; the last fill values the rest.
		"carried, no quote":   {day: 0, mark: MarkLastFill},
		"half sold, no quote": {sellFriday: 50, day: -5, mark: MarkLastFill},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := NewProjection()
			amt := dec(1_000_000)
			evs := []Event{
				{Type: CashDeposited, At: thursday, Amount: &amt},
				{Type: OrderAccepted, At: thursday, OrderID: "b", Order: &trading.Order{ID: "b", Symbol: "7203.T", Side: trading.Buy, Type: trading.Market, Quantity: 100}},
				{Type: OrderFilled, At: thursday, OrderID: "b", Fill: &trading.Fill{Quantity: 100, Price: dec(1000), Fee: dec(3)}},
			}
			if tc.sellFriday > 0 {
				evs = append(evs,
					Event{Type: OrderAccepted, At: friday, OrderID: "s", Order: &trading.Order{ID: "s", Symbol: "7203.T", Side: trading.Sell, Type: trading.Market, Quantity: tc.sellFriday}},
					Event{Type: OrderFilled, At: friday, OrderID: "s", Fill: &trading.Fill{Quantity: tc.sellFriday, Price: dec(1450), Fee: dec(5)}})
			}
			for _, e := range evs {
				if err := p.Apply(e); err != nil {
					t.Fatal(err)
				}
			}
			now := friday.Add(time.Hour)
			if got := p.MarkedBook(now, tc.quotes).DayPnL; !got.Equal(dec(tc.day)) {
				t.Fatalf("day P&L %s, want %d", got, tc.day)
			}
			s := p.Summary(now, tc.quotes)
			if !s.DayPnL.Equal(dec(tc.day)) {
				t.Fatalf("summary day P&L %s, want %d", s.DayPnL, tc.day)
			}
			if tc.mark != "" && (len(s.Positions) != 1 || s.Positions[0].MarkSource != tc.mark) {
				t.Fatalf("positions %+v, want one marked %s", s.Positions, tc.mark)
			}
			// On Thursday evening the whole day is Thursday's: bought at 1,000, marked at the
			// previous close the quote gives (the fold knows nothing of Friday yet).
			if tc.sellFriday == 0 && tc.quotes != nil {
				thu := map[string]trading.Quote{"7203.T": {Last: dec(1500), PrevClose: dec(900)}}
				if got := p.MarkedBook(thursday.Add(6*time.Hour), thu).DayPnL; !got.Equal(dec(50_000 - 3)) {
					t.Fatalf("Thursday's P&L %s, want 49,997", got)
				}
			}
		})
	}
}
