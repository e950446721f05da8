package trading_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/trading"
)

// TestQuoteAllKeepsWhatItGets: a failing symbol and one slower than the deadline cost the
// others nothing, and each missing symbol says why.
func TestQuoteAllKeepsWhatItGets(t *testing.T) {
	down := errors.New("provider down")
	q := trading.QuoterFunc(func(ctx context.Context, s string) (trading.Quote, error) {
		switch s {
		case "9984.T":
			return trading.Quote{}, down
		case "6758.T":
			<-ctx.Done()
			return trading.Quote{}, ctx.Err()
		case "8306.T":
			return trading.Quote{Symbol: s}, nil // no price
		}
		return trading.Quote{Symbol: s, Last: decimal.NewFromInt(2000)}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	got, failed := trading.QuoteAll(ctx, q, []string{"7203.T", "9984.T", "6758.T", "8306.T", "7203.T"})
	if len(got) != 1 || !got["7203.T"].Last.Equal(decimal.NewFromInt(2000)) {
		t.Fatalf("got %v", got)
	}
	if len(failed) != 3 || !errors.Is(failed["9984.T"], down) || !errors.Is(failed["6758.T"], context.DeadlineExceeded) || failed["8306.T"] == nil {
		t.Fatalf("failed %v", failed)
	}
}
