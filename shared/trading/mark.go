package trading

import (
	"context"
	"sort"
	"sync"
)

// Quoter prices a symbol now.
type Quoter interface {
	Quote(ctx context.Context, symbol string) (Quote, error)
}

// QuoterFunc adapts a function to Quoter.
type QuoterFunc func(ctx context.Context, symbol string) (Quote, error)

// Quote calls f.
func (f QuoterFunc) Quote(ctx context.Context, symbol string) (Quote, error) { return f(ctx, symbol) }

// quoteParallelism bounds the quotes one valuation asks for at once: an account holds a
// handful of symbols, and each quote is two market-cache reads.
const quoteParallelism = 8

// QuoteAll quotes symbols concurrently within ctx (give it the deadline the caller can
// spend). It returns the quotes it got and, apart, why each other symbol has none; one
// symbol's failure never costs the others theirs.
func QuoteAll(ctx context.Context, q Quoter, symbols []string) (map[string]Quote, map[string]error) {
	got, failed := map[string]Quote{}, map[string]error{}
	syms := append([]string(nil), symbols...)
	sort.Strings(syms)
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, quoteParallelism)
	)
	for i, s := range syms {
		if i > 0 && syms[i-1] == s {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				mu.Lock()
				failed[s] = ctx.Err()
				mu.Unlock()
				return
			}
			qt, err := q.Quote(ctx, s)
			if err == nil && !qt.Last.IsPositive() {
				err = errNoPrice
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[s] = err
				return
			}
			got[s] = qt
		}()
	}
	wg.Wait()
	return got, failed
}

type quoteError string

func (e quoteError) Error() string { return string(e) }

const errNoPrice = quoteError("trading: quote without a positive last price")
