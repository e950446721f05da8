package trading

import (
	"errors"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/symbols"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestTickTables(t *testing.T) {
	tests := map[string]struct {
		price    string
		topix500 bool
		tick     string
	}{
		"topix 1000 edge":    {"1000", true, "0.1"},
		"topix above 1000":   {"1000.5", true, "0.5"},
		"topix 3000 edge":    {"3000", true, "0.5"},
		"topix 5000":         {"5000", true, "1"},
		"topix 10001":        {"10001", true, "5"},
		"topix 50000":        {"50000", true, "10"},
		"topix 200000":       {"200000", true, "50"},
		"topix top":          {"40000000", true, "10000"},
		"other 3000 edge":    {"3000", false, "1"},
		"other 3001":         {"3001", false, "5"},
		"other 30000 edge":   {"30000", false, "10"},
		"other 30001":        {"30001", false, "50"},
		"other 60000000 top": {"60000000", false, "100000"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := TickSize(d(tc.price), tc.topix500); !got.Equal(d(tc.tick)) {
				t.Fatalf("TickSize(%s) = %s, want %s", tc.price, got, tc.tick)
			}
		})
	}
	if OnTick(d("2500.5"), false) || !OnTick(d("2500.5"), true) || OnTick(d("3002"), false) || !OnTick(d("3005"), false) || OnTick(d("0"), true) {
		t.Fatal("OnTick")
	}
	if got := RoundToTick(d("3001.2"), false, RoundUp); !got.Equal(d("3005")) {
		t.Fatalf("round up %s", got)
	}
	if got := RoundToTick(d("0.04"), true, RoundDown); !got.Equal(d("0.1")) {
		t.Fatalf("never below one tick: %s", got)
	}
}

func TestDailyLimitTable(t *testing.T) {
	tests := map[string]string{"99": "30", "100": "50", "999": "150", "1000": "300", "2999": "500", "3000": "700", "15000": "4000", "49999": "7000", "60000000": "10000000"}
	for base, want := range tests {
		if got := DailyLimit(d(base)); !got.Equal(d(want)) {
			t.Errorf("DailyLimit(%s) = %s, want %s", base, got, want)
		}
	}
	lo, hi := PriceBand(d("50"), false)
	if !lo.Equal(d("20")) || !hi.Equal(d("80")) {
		t.Fatalf("band %s %s", lo, hi)
	}
	lo, _ = PriceBand(d("20"), false)
	if !lo.Equal(d("1")) {
		t.Fatalf("lower bound %s is below one tick", lo)
	}
}

func TestSimulate(t *testing.T) {
	q := Quote{Symbol: "7203.T", Last: d("2500"), PrevClose: d("2480")}
	c := Costs{SlippageBps: d("10"), FeeBps: d("10")}
	lim := func(s string) *decimal.Decimal { v := d(s); return &v }
	tests := map[string]struct {
		o    Order
		fill string // "" = rests
		fee  string
	}{
		"market buy slips up":      {Order{Symbol: "7203.T", Side: Buy, Type: Market, Quantity: 100}, "2502.5", "251"},
		"market sell slips down":   {Order{Symbol: "7203.T", Side: Sell, Type: Market, Quantity: 100}, "2497.5", "250"},
		"limit buy below rests":    {Order{Symbol: "7203.T", Side: Buy, Type: Limit, Quantity: 100, LimitPrice: lim("2499.5")}, "", ""},
		"limit buy capped":         {Order{Symbol: "7203.T", Side: Buy, Type: Limit, Quantity: 100, LimitPrice: lim("2501")}, "2501", "251"},
		"limit sell above rests":   {Order{Symbol: "7203.T", Side: Sell, Type: Limit, Quantity: 100, LimitPrice: lim("2500.5")}, "", ""},
		"limit sell at its limit":  {Order{Symbol: "7203.T", Side: Sell, Type: Limit, Quantity: 100, LimitPrice: lim("2498")}, "2498", "250"},
		"limit buy above the slip": {Order{Symbol: "7203.T", Side: Buy, Type: Limit, Quantity: 100, LimitPrice: lim("2600")}, "2502.5", "251"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := Simulate(tc.o, q, true, c)
			switch {
			case tc.fill == "" && f != nil:
				t.Fatalf("filled at %s, want resting", f.Price)
			case tc.fill == "":
			case f == nil:
				t.Fatal("rests, want a fill")
			case !f.Price.Equal(d(tc.fill)) || !f.Fee.Equal(d(tc.fee)):
				t.Fatalf("fill %s fee %s, want %s %s", f.Price, f.Fee, tc.fill, tc.fee)
			}
		})
	}
	// The band caps slippage: a stock at its limit-up fills at the limit, not above.
	up := Quote{Last: d("2980"), PrevClose: d("2480")}
	if f := Simulate(Order{Side: Buy, Type: Market, Quantity: 100}, up, true, Costs{SlippageBps: d("100")}); !f.Price.Equal(d("2980")) {
		t.Fatalf("limit-up fill %s", f.Price)
	}
}

// universe is the starter list, which every execution function serves by default.
var universe = symbols.Starter()

var _ Universe = (*symbols.Universe)(nil)

func TestDecodeOrderRules(t *testing.T) {
	tests := map[string]struct {
		body string
		rule Rule
	}{
		"ok market":    {`{"symbol":"7203.t","side":"buy","type":"market","quantity":100}`, ""},
		"ok limit num": {`{"symbol":"7203.T","side":"sell","type":"limit","quantity":200,"limit_price":2500.5}`, ""},
		"lot":          {`{"symbol":"7203.T","side":"buy","type":"market","quantity":101}`, RuleLotSize},
		"tick other":   {`{"symbol":"2702.T","side":"buy","type":"limit","quantity":100,"limit_price":"2500.5"}`, RuleTickSize},
		"unlisted":     {`{"symbol":"1111.T","side":"buy","type":"market","quantity":100}`, RuleUnknownSymbol},
		"unlisted px":  {`{"symbol":"9999.T","side":"buy","type":"limit","quantity":100,"limit_price":"2500.5"}`, RuleUnknownSymbol},
		"overflow":     {`{"symbol":"7203.T","side":"buy","type":"market","quantity":1e30}`, RuleQuantity},
		"fraction":     {`{"symbol":"7203.T","side":"buy","type":"market","quantity":150.5}`, RuleQuantity},
		"decimals":     {`{"symbol":"7203.T","side":"buy","type":"limit","quantity":100,"limit_price":"2500.00001"}`, RulePrice},
		"symbol":       {`{"symbol":"7203","side":"buy","type":"market","quantity":100}`, RuleSymbol},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o, err := DecodeOrder([]byte(tc.body), universe)
			if tc.rule == "" {
				if err != nil || o.Symbol != "7203.T" {
					t.Fatalf("%+v %v", o, err)
				}
				return
			}
			var he *httpx.Error
			if !errors.As(err, &he) || he.Code != tc.rule.Code() || he.Extra["rule"] != string(tc.rule) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

func FuzzDecodeOrder(f *testing.F) {
	for _, s := range []string{
		`{"symbol":"7203.T","side":"buy","type":"market","quantity":100}`,
		`{"symbol":"7203.T","side":"sell","type":"limit","quantity":200,"limit_price":"2500.5"}`,
		`{"symbol":"130A.T","side":"buy","type":"limit","quantity":100,"limit_price":1e-9}`,
		`{"quantity":1e400}`, `[]`, `null`, ``, `{"limit_price":"1e999999"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOrder(b, universe)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) || he.Code.Status() >= 500 {
				t.Fatalf("non-4xx error %v", err)
			}
			return
		}
		// Whatever passes is a sane order.
		if o.Quantity <= 0 || o.Quantity%LotSize != 0 || o.Quantity > MaxQuantity {
			t.Fatalf("quantity %d passed", o.Quantity)
		}
		if o.Type == Limit && (o.LimitPrice == nil || !OnTick(*o.LimitPrice, universe.TOPIX500(o.Symbol))) {
			t.Fatalf("limit price %v passed", o.LimitPrice)
		}
		if _, ok := NormalizeSymbol(o.Symbol); !ok || !universe.Listed(o.Symbol) {
			t.Fatalf("symbol %q passed", o.Symbol)
		}
	})
}

func TestSimulateBar(t *testing.T) {
	c := Costs{SlippageBps: d("10"), FeeBps: d("10")}
	lim := func(s string) *decimal.Decimal { v := d(s); return &v }
	buy := Order{Symbol: "7203.T", Side: Buy, Type: Limit, Quantity: 100, LimitPrice: lim("2500")}
	sell := Order{Symbol: "7203.T", Side: Sell, Type: Limit, Quantity: 100, LimitPrice: lim("2500")}
	tests := map[string]struct {
		o    Order
		bar  Bar
		fill string // "" = no fill
	}{
		"buy: low above the limit":          {buy, Bar{d("2510"), d("2520"), d("2500.5")}, ""},
		"buy: low touches the limit":        {buy, Bar{d("2510"), d("2520"), d("2500")}, "2500"},
		"buy: gap down opens below":         {buy, Bar{d("2480"), d("2490"), d("2470")}, "2482.5"},
		"buy: gap just below, slip capped":  {buy, Bar{d("2499.5"), d("2505"), d("2499")}, "2500"},
		"sell: high below the limit":        {sell, Bar{d("2490"), d("2499.5"), d("2480")}, ""},
		"sell: high touches the limit":      {sell, Bar{d("2490"), d("2500"), d("2480")}, "2500"},
		"sell: gap up opens above":          {sell, Bar{d("2520"), d("2530"), d("2515")}, "2517"},
		"market orders never rest on a bar": {Order{Side: Buy, Type: Market, Quantity: 100}, Bar{d("1"), d("1"), d("1")}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := SimulateBar(tc.o, tc.bar, true, c)
			switch {
			case tc.fill == "" && f != nil:
				t.Fatalf("filled at %s", f.Price)
			case tc.fill == "":
			case f == nil:
				t.Fatal("no fill")
			case !f.Price.Equal(d(tc.fill)):
				t.Fatalf("fill %s, want %s", f.Price, tc.fill)
			case tc.o.Side == Buy && f.Price.GreaterThan(*tc.o.LimitPrice), tc.o.Side == Sell && f.Price.LessThan(*tc.o.LimitPrice):
				t.Fatalf("fill %s beyond the limit", f.Price)
			case !f.Fee.Equal(f.Notional().Mul(d("0.001")).Ceil()):
				t.Fatalf("fee %s", f.Fee)
			}
		})
	}
}
