package symbols

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/market"
)

func TestStarterList(t *testing.T) {
	u := Starter()
	if u.Len() < 100 {
		t.Fatalf("%d symbols, want at least 100", u.Len())
	}
	if u.AsOf().IsZero() || u.Source() != "starter" {
		t.Fatalf("as of %v, source %q", u.AsOf(), u.Source())
	}
	for _, want := range []struct{ code, en, sector string }{
		{"7203", "Toyota Motor", "Transportation Equipment"},
		{"6758", "Sony Group", "Electric Appliances"},
		{"8306", "Mitsubishi UFJ Financial Group", "Banks"},
		{"6861", "Keyence", "Electric Appliances"},
		{"9984", "SoftBank Group", "Information & Communication"},
	} {
		s, ok := u.Lookup(want.code)
		if !ok || s.NameEN != want.en || s.Sector != want.sector || s.Segment != Prime || !s.TOPIX500 || s.LotSize != 100 || s.NameJA == "" {
			t.Errorf("%s: %+v", want.code, s)
		}
	}
	if s, _ := u.Lookup("7203.t"); s.Code != "7203" {
		t.Error("lookup by lower-case ticker failed")
	}
	all := u.All()
	if all[0].Code != "7203" {
		t.Errorf("largest is %s, want Toyota", all[0].Code)
	}
	segs := map[Segment]int{}
	for i, s := range all {
		segs[s.Segment]++
		if i > 0 && s.MarketCapJPY > all[i-1].MarketCapJPY {
			t.Errorf("not ordered by market cap at %s", s.Code)
		}
		if Sectors33[s.SectorCode] != s.Sector {
			t.Errorf("%s: sector %s %q is not the TSE's name %q", s.Code, s.SectorCode, s.Sector, Sectors33[s.SectorCode])
		}
		// The 100 largest TSE stocks are all TOPIX 500 members on the Prime market.
		if i < 100 && (!s.TOPIX500 || s.Segment != Prime) {
			t.Errorf("%s (rank %d) is %s, topix500=%v", s.Code, i+1, s.Segment, s.TOPIX500)
		}
	}
	if segs[Standard] == 0 || segs[Growth] == 0 {
		t.Errorf("segments %v: the starter list should let a screen pick Standard and Growth", segs)
	}
}

func TestParseCSVRejects(t *testing.T) {
	head := "# as_of: 2025-06-30\ncode,name_ja,name_en,segment,sector33_code,sector33,scale,lot_size,market_cap_jpy_bn\n"
	for name, body := range map[string]string{
		"no as_of":      "code,name_ja,name_en,segment,sector33_code,sector33\n7203,a,b,prime,3700,x\n",
		"bad code":      head + "72-3,a,b,prime,3700,x,,100,1\n",
		"bad segment":   head + "7203,a,b,main,3700,x,,100,1\n",
		"duplicate":     head + "7203,a,b,prime,3700,x,,100,1\n7203,a,b,prime,3700,x,,100,1\n",
		"nan cap":       head + "7203,a,b,prime,3700,x,,100,NaN\n",
		"negative cap":  head + "7203,a,b,prime,3700,x,,100,-1\n",
		"zero lot":      head + "7203,a,b,prime,3700,x,,0,1\n",
		"missing col":   "# as_of: 2025-06-30\ncode,name_en\n7203,b\n",
		"bad as_of":     "# as_of: June\n" + head,
		"bad lot":       head + "7203,a,b,prime,3700,x,,lots,1\n",
		"ragged quotes": head + "7203,\"a,b,prime\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseCSV(strings.NewReader(body), "t"); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzParseCSV(f *testing.F) {
	seed, _ := os.ReadFile("data/tse_starter.csv")
	f.Add(string(seed))
	f.Add("# as_of: 2025-01-01\ncode,name_ja,name_en,segment,sector33_code,sector33\n7203,a,b,prime,3700,x\n")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseCSV(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		for _, sym := range u.All() {
			if err := sym.validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func jquantsServer(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/v2/equities/master" || r.Header.Get("x-api-key") != "k" {
			http.Error(w, `{"message":"bad request"}`, 400)
			return
		}
		if status != 200 {
			w.WriteHeader(status)
			w.Write([]byte(`{"message":"The incoming token is invalid or expired."}`))
			return
		}
		file := "testdata/jquants_master_page1.json"
		if r.URL.Query().Get("pagination_key") == "page-2" {
			file = "testdata/jquants_master_page2.json"
		}
		if r.URL.Query().Get("date") != "2025-06-30" {
			http.Error(w, `{"message":"date"}`, 400)
			return
		}
		http.ServeFile(w, r, file)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestJQuantsListedIssues(t *testing.T) {
	srv, calls := jquantsServer(t, 200)
	j := &JQuants{BaseURL: srv.URL, APIKey: "k", Client: srv.Client()}
	u, err := j.List(context.Background(), time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Errorf("%d requests, want 2 pages", calls.Load())
	}
	// Toyota, JPX, McDonald's, 130A and Kyokuyo; not the preferred share nor TOKYO PRO MARKET.
	if u.Len() != 5 || u.Source() != "jquants" || u.AsOf().Format(time.DateOnly) != "2025-06-30" {
		t.Fatalf("%d symbols from %s as of %v: %+v", u.Len(), u.Source(), u.AsOf(), u.All())
	}
	toyota, _ := u.Lookup("7203.T")
	if toyota.NameJA != "トヨタ自動車" || toyota.Sector != "Transportation Equipment" || !toyota.TOPIX500 || toyota.Segment != Prime {
		t.Errorf("toyota %+v", toyota)
	}
	if s, ok := u.Lookup("130A.T"); !ok || s.Segment != Growth || s.TOPIX500 || s.Scale != "" {
		t.Errorf("130A %+v", s)
	}
	if s, ok := u.Lookup("1301"); !ok || s.TOPIX500 || s.Scale != ScaleSmall1 {
		t.Errorf("1301 %+v", s)
	}
	if s, _ := u.Lookup("2702"); s.Segment != Standard {
		t.Errorf("2702 %+v", s)
	}
	if _, ok := u.Lookup("2593"); ok {
		t.Error("a preferred share was listed")
	}
}

func TestJQuantsFailures(t *testing.T) {
	srv, _ := jquantsServer(t, 401)
	_, err := (&JQuants{BaseURL: srv.URL, APIKey: "k"}).List(context.Background(), time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC))
	if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err %v", err)
	}
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"data":`)) }))
	defer garbage.Close()
	if _, err := (&JQuants{BaseURL: garbage.URL, APIKey: "k"}).List(context.Background(), time.Time{}); !errors.Is(err, ErrSource) {
		t.Fatalf("garbage: %v", err)
	}
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"data":[],"pagination_key":"same"}`))
	}))
	defer loop.Close()
	if _, err := (&JQuants{BaseURL: loop.URL, APIKey: "k"}).List(context.Background(), time.Time{}); !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), "repeated") {
		t.Fatalf("loop: %v", err)
	}
	if _, err := (&JQuants{BaseURL: loop.URL}).List(context.Background(), time.Time{}); err == nil {
		t.Fatal("no API key accepted")
	}
}

func synthetic() market.Provider {
	now := time.Date(2026, 11, 20, 16, 0, 0, 0, market.JST) // a Friday after the close
	return market.NewSynthetic(market.Options{Now: func() time.Time { return now }})
}

func TestMeasureAndRank(t *testing.T) {
	u := Starter()
	syms := u.All()[:20]
	l := NewLoader(synthetic(), LoaderOptions{})
	ms, skipped, err := l.Measure(context.Background(), syms, "3mo")
	if err != nil || len(skipped) != 0 || len(ms) != 20 {
		t.Fatalf("measured %d, skipped %v, err %v", len(ms), skipped, err)
	}
	for i, m := range ms {
		if m.Symbol.Ticker != syms[i].Ticker {
			t.Fatalf("order: %s at %d", m.Symbol.Ticker, i)
		}
		if m.Bars < 55 || m.Close <= 0 || m.AvgVolume <= 0 || m.AvgTurnover <= m.AvgVolume || m.Volatility <= 0 || m.Volatility > 3 || m.TrendR2 < 0 || m.TrendR2 > 1 {
			t.Errorf("%s: implausible %+v", m.Symbol.Ticker, m)
		}
		if rsi, ok := m.Indicators["rsi14"]; !ok || rsi < 0 || rsi > 100 {
			t.Errorf("%s: rsi14 %v", m.Symbol.Ticker, rsi)
		}
		for k := range m.Indicators {
			if !strings.Contains(strings.Join(IndicatorKeys, ","), k) {
				t.Errorf("indicator %q not in IndicatorKeys", k)
			}
		}
	}
	for _, preset := range CriteriaNames() {
		scores := Rank(ms, Presets[preset])
		if len(scores) != len(ms) {
			t.Fatal("lost scores")
		}
		for i, s := range scores {
			var sum, wsum float64
			for _, c := range s.Components {
				sum += c.Contribution
				wsum += c.Weight
				if c.Score < 0 || c.Score > 1 {
					t.Errorf("%s %s score %v", s.Symbol, c.Name, c.Score)
				}
			}
			if d := sum - s.Total; d > 1e-9 || d < -1e-9 || s.Total < 0 || s.Total > 1 {
				t.Errorf("%s: total %v, contributions sum %v", s.Symbol, s.Total, sum)
			}
			if d := wsum - 1; d > 1e-9 || d < -1e-9 {
				t.Errorf("%s: weights sum %v", s.Symbol, wsum)
			}
			if i > 0 && s.Total > scores[i-1].Total {
				t.Errorf("not sorted at %d", i)
			}
		}
	}
	// Liquidity alone ranks by turnover.
	only := Rank(ms, Criteria{Weights: Weights{CompLiquidity: 1}})
	byTicker := map[string]Metrics{}
	for _, m := range ms {
		byTicker[m.Symbol.Ticker] = m
	}
	for i := 1; i < len(only); i++ {
		if byTicker[only[i].Symbol].AvgTurnover > byTicker[only[i-1].Symbol].AvgTurnover {
			t.Fatalf("liquidity-only ranking is not by turnover at %d", i)
		}
	}
}

func TestRankUnknownMarketCapRedistributes(t *testing.T) {
	ms := []Metrics{
		{Symbol: Symbol{Ticker: "1111.T"}, AvgTurnover: 10, Volatility: 0.2, VolumeCV: 0.1},
		{Symbol: Symbol{Ticker: "2222.T", MarketCapJPY: 1e12}, AvgTurnover: 20, Volatility: 0.3, VolumeCV: 0.2},
	}
	scores := Rank(ms, Presets["day_trading"])
	for _, s := range scores {
		for _, c := range s.Components {
			if s.Symbol == "1111.T" && c.Name == CompMarketCap && (c.Weight != 0 || !strings.Contains(c.Note, "unknown")) {
				t.Errorf("unknown market cap component %+v", c)
			}
		}
	}
	if err := (Weights{"luck": 1}).Validate(); err == nil {
		t.Error("unknown component accepted")
	}
	if err := (Weights{CompTrend: 0}).Validate(); err == nil {
		t.Error("all-zero weights accepted")
	}
}

func TestLoaderBoundsConcurrencyCachesAndReportsFailures(t *testing.T) {
	var inFlight, peak, calls atomic.Int32
	syn := synthetic()
	src := BarSourceFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		switch q.Symbol {
		case "9999.T":
			return nil, market.ErrUnknownSymbol
		case "8888.T":
			return nil, &market.UnavailableError{Provider: "test", Err: errors.New("down")}
		}
		return syn.Bars(ctx, q)
	})
	l := NewLoader(src, LoaderOptions{Concurrency: 3})
	syms := Starter().All()[:30]
	syms = append(syms, Symbol{Ticker: "9999.T"}, Symbol{Ticker: "8888.T"})
	ms, skipped, err := l.Measure(context.Background(), syms, "1mo")
	if err != nil || len(ms) != 30 || len(skipped) != 2 {
		t.Fatalf("%d measured, skipped %v, err %v", len(ms), skipped, err)
	}
	if peak.Load() > 3 {
		t.Errorf("peak concurrency %d > 3", peak.Load())
	}
	before := calls.Load()
	if _, _, err := l.Measure(context.Background(), syms[:30], "1mo"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != before {
		t.Errorf("cached metrics refetched: %d calls after %d", calls.Load(), before)
	}
	// Every symbol failing for a provider fault is the provider's failure, not the symbols'.
	if _, _, err := l.Measure(context.Background(), []Symbol{{Ticker: "8888.T"}}, "1mo"); !errors.Is(err, market.ErrUnavailable) {
		t.Fatalf("all-down: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := NewLoader(src, LoaderOptions{}).Measure(ctx, syms, "1mo"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func BenchmarkMeasure100(b *testing.B) {
	syms := Starter().All()[:100]
	src := synthetic()
	for b.Loop() {
		l := NewLoader(src, LoaderOptions{TTL: -1})
		if _, _, err := l.Measure(context.Background(), syms, "3mo"); err != nil {
			b.Fatal(err)
		}
	}
}
