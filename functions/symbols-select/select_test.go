package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/symbols/symtest"
)

func synthetic() market.Provider {
	now := time.Date(2026, 11, 20, 16, 0, 0, 0, market.JST) // a Friday after the close
	return market.NewSynthetic(market.Options{Now: func() time.Time { return now }})
}

func newHandler(t testing.TB, p market.Provider) http.Handler {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	cache := marketcache.New(rdb, store.NewKeys("sym"), p, "test")
	l := symbols.NewLoader(symbols.FromCache(cache), symbols.LoaderOptions{})
	return newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), symbols.Starter(), l)
}

func post(t testing.TB, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/symbols/select", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%d %s: %v", w.Code, w.Body, err)
	}
	return v
}

func TestSelectExplainsEveryScore(t *testing.T) {
	h := newHandler(t, symtest.Walk())
	w := post(t, h, `{"criteria":"day_trading","count":5,"filters":{}}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	resp := decode[selectResponse](t, w)
	u := symbols.Starter()
	if len(resp.Symbols) != 5 || len(resp.Scores) != 5 {
		t.Fatalf("%d symbols, %d scores", len(resp.Symbols), len(resp.Scores))
	}
	md := resp.Metadata
	if md.Criteria != "day_trading" || md.Lookback != "3mo" || md.UniverseSize != u.Len() || md.Candidates != u.Len() || md.Scored != u.Len() || md.UniverseAsOf == "" {
		t.Fatalf("metadata %+v", md)
	}
	for i, s := range resp.Scores {
		if s.Symbol != resp.Symbols[i].Ticker {
			t.Fatalf("scores[%d] is %s, symbols[%d] %s", i, s.Symbol, i, resp.Symbols[i].Ticker)
		}
		if i > 0 && s.Total > resp.Scores[i-1].Total {
			t.Fatal("not best first")
		}
		var sum float64
		names := map[string]bool{}
		for _, c := range s.Components {
			sum += c.Contribution
			names[c.Name] = true
		}
		if len(names) != len(symbols.Components) || sum-s.Total > 1e-9 || s.Total-sum > 1e-9 {
			t.Errorf("%s: components %v do not explain total %v", s.Symbol, s.Components, s.Total)
		}
	}
}

func TestSelectFiltersAndWeights(t *testing.T) {
	h := newHandler(t, symtest.Walk())
	for name, tc := range map[string]struct {
		body string
		ok   func(symbols.Symbol) bool
		n    int
	}{
		"growth only":    {`{"count":100,"filters":{"segments":["Growth"]}}`, func(s symbols.Symbol) bool { return s.Segment == symbols.Growth }, 3},
		"banks by code":  {`{"count":100,"filters":{"sectors":["7050"]}}`, func(s symbols.Symbol) bool { return s.Sector == "Banks" }, 6},
		"not topix500":   {`{"count":100,"filters":{"topix500":false}}`, func(s symbols.Symbol) bool { return !s.TOPIX500 }, 6},
		"explicit list":  {`{"count":3,"filters":{"symbols":["7203","6758.t","8306.T","9984.T"]}}`, func(s symbols.Symbol) bool { return strings.Contains("7203 6758 8306 9984", s.Code) }, 3},
		"cheap and calm": {`{"count":100,"criteria":"stable","filters":{"price":{"max":3000},"volatility":{"max":0.9}}}`, func(s symbols.Symbol) bool { return true }, -1},
	} {
		t.Run(name, func(t *testing.T) {
			w := post(t, h, tc.body)
			if w.Code != 200 {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			resp := decode[selectResponse](t, w)
			if tc.n >= 0 && len(resp.Symbols) != tc.n {
				t.Fatalf("%d symbols, want %d", len(resp.Symbols), tc.n)
			}
			for _, s := range resp.Symbols {
				if !tc.ok(s) {
					t.Errorf("%s does not pass the filter", s.Ticker)
				}
			}
			for _, s := range resp.Scores {
				for _, c := range s.Components {
					if name == "cheap and calm" && c.Name == symbols.CompVolatility && c.Value > 0.9 {
						t.Errorf("%s volatility %v", s.Symbol, c.Value)
					}
				}
			}
		})
	}
	// Liquidity alone ranks by turnover: the top symbol has the largest turnover component.
	resp := decode[selectResponse](t, post(t, h, `{"count":100,"weights":{"liquidity":1,"volatility":0,"volume_consistency":0,"trend":0,"market_cap":0}}`))
	liq := func(s symbols.Score) float64 {
		for _, c := range s.Components {
			if c.Name == symbols.CompLiquidity {
				return c.Value
			}
		}
		return -1
	}
	for i := 1; i < len(resp.Scores); i++ {
		if liq(resp.Scores[i]) > liq(resp.Scores[i-1]) {
			t.Fatalf("liquidity-only order broken at %d", i)
		}
	}
	if resp.Metadata.Weights[symbols.CompLiquidity] != 1 {
		t.Errorf("weights %v", resp.Metadata.Weights)
	}
}

func TestSelectBadInputNamesTheField(t *testing.T) {
	h := newHandler(t, symtest.Walk())
	for body, field := range map[string]string{
		`{"count":0}`:                  "count",
		`{"count":1000}`:               "count",
		`{"criteria":"yolo"}`:          "criteria",
		`{"weights":{"luck":1}}`:       "weights",
		`{"weights":{"liquidity":-1}}`: "weights",
		`{"criteria":"stable","weights":{"liquidity":0,"volatility":0,"volume_consistency":0,"market_cap":0}}`: "weights",
		`{"lookback":"5y"}`:                                        "lookback",
		`{"filters":{"segments":["main"]}}`:                        "filters.segments[0]",
		`{"filters":{"sectors":["Crypto"]}}`:                       "filters.sectors[0]",
		`{"filters":{"symbols":["0000.T"]}}`:                       "filters.symbols[0]",
		`{"filters":{"price":{"min":10,"max":1}}}`:                 "filters.price",
		`{"filters":{"price":{}}}`:                                 "filters.price",
		`{"filters":{"indicators":{"rsi99":{"min":1}}}}`:           "filters.indicators.rsi99",
		`{"filters":{"indicators":{"rsi14":{"min":80,"max":20}}}}`: "filters.indicators.rsi14",
		`{"count":"ten"}`:                                          "",
		`{"nope":1}`:                                               "",
		`[`:                                                        "",
	} {
		w := post(t, h, body)
		if w.Code != 400 || w.Header().Get("Content-Type") != httpx.ProblemContentType {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
			continue
		}
		if field == "" {
			continue
		}
		p := decode[httpx.Problem](t, w)
		found := false
		for _, e := range p.Errors {
			found = found || e.Field == field
		}
		if !found {
			t.Errorf("%s: errors %+v do not name %s", body, p.Errors, field)
		}
	}
}

// The default provider, on a handful of symbols: the simulated TSE gives plausible metrics.
func TestSelectOnSyntheticMarket(t *testing.T) {
	h := newHandler(t, synthetic())
	resp := decode[selectResponse](t, post(t, h, `{"count":3,"lookback":"1mo","filters":{"symbols":["7203","6758","8306","9984"]}}`))
	if len(resp.Symbols) != 3 || resp.Metadata.Scored != 4 {
		t.Fatalf("%+v", resp)
	}
	for _, s := range resp.Scores {
		for _, c := range s.Components {
			if c.Name == symbols.CompLiquidity && c.Value < 1e6 {
				t.Errorf("%s turnover %v yen a day", s.Symbol, c.Value)
			}
		}
	}
}

func TestSelectProviderDown(t *testing.T) {
	h := newHandler(t, market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		return nil, &market.UnavailableError{Provider: "test", RetryAfter: 30 * time.Second, Err: errors.New("429")}
	}))
	w := post(t, h, `{}`)
	if w.Code != 503 || w.Header().Get("Retry-After") != "30" {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

// FuzzSelectRequest feeds arbitrary bodies to the decoder and validator: every one is accepted
// or refused with a 4xx code, never a panic or an internal error.
func FuzzSelectRequest(f *testing.F) {
	for _, s := range []string{`{}`, `{"count":5,"criteria":"momentum","weights":{"trend":1}}`,
		`{"filters":{"symbols":["7203"],"segments":["prime"],"sectors":["Banks"],"price":{"min":1},"indicators":{"rsi14":{"max":30}}}}`,
		`{"filters":{"volatility":{"min":1e308,"max":-1e308}}}`} {
		f.Add([]byte(s))
	}
	u := symbols.Starter()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		dec, err := httpx.Decode[selectRequest](httptest.NewRecorder(), req, maxBody)
		if err == nil {
			_, err = parseSelect(dec, u)
		}
		if err != nil {
			if c := httpx.ErrorCode(err); c.Status() >= 500 {
				t.Fatalf("%s: %v", c, err)
			}
		}
	})
}

// BenchmarkSelectWarm is the steady state: the whole universe's metrics in the loader's cache.
func BenchmarkSelectWarm(b *testing.B) {
	h := newHandler(b, symtest.Walk())
	for b.Loop() {
		if w := post(b, h, `{"count":10}`); w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
