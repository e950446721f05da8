package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/symbols/symtest"
)

type fixture struct {
	h, other http.Handler // two replicas sharing one Redis
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	mk := func() http.Handler {
		cache := marketcache.New(rdb, store.NewKeys("sym"), symtest.Walk(), "test")
		l := symbols.NewLoader(symbols.FromCache(cache), symbols.LoaderOptions{})
		return newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), symbols.Starter(), l, newCursors(rdb, store.NewKeys("sym")))
	}
	return fixture{h: mk(), other: mk()}
}

func post(t testing.TB, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/symbols/screen", strings.NewReader(body))
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

func withCursor(body, cursor string) string {
	var m map[string]any
	json.Unmarshal([]byte(body), &m)
	m["cursor"] = cursor
	b, _ := json.Marshal(m)
	return string(b)
}

func TestScreenPagesThroughEverythingOnce(t *testing.T) {
	f := newFixture(t)
	body := `{"filters":{"segments":["prime"]},"sort_by":"-volatility","limit":7}`
	var (
		all    []symbols.Metrics
		cursor string
		total  int
	)
	for page := 0; ; page++ {
		h := f.h
		if page%2 == 1 {
			h = f.other // a cursor minted by one replica is honoured by another
		}
		w := post(t, h, withCursor(body, cursor))
		if w.Code != 200 {
			t.Fatalf("page %d: %d %s", page, w.Code, w.Body)
		}
		resp := decode[screenResponse](t, w)
		total = resp.Total
		all = append(all, resp.Symbols...)
		if resp.NextCursor == "" {
			break
		}
		if len(resp.Symbols) != 7 || page > 50 {
			t.Fatalf("page %d has %d symbols", page, len(resp.Symbols))
		}
		cursor = resp.NextCursor
	}
	prime := 0
	for _, s := range symbols.Starter().All() {
		if s.Segment == symbols.Prime {
			prime++
		}
	}
	if total != prime || len(all) != prime {
		t.Fatalf("total %d, paged %d, want %d", total, len(all), prime)
	}
	seen := map[string]bool{}
	for i, m := range all {
		if seen[m.Symbol.Ticker] || m.Symbol.Segment != symbols.Prime {
			t.Fatalf("%s repeated or not prime", m.Symbol.Ticker)
		}
		seen[m.Symbol.Ticker] = true
		if i > 0 && m.Volatility > all[i-1].Volatility {
			t.Fatalf("not sorted by -volatility at %d", i)
		}
	}
}

func TestScreenFilters(t *testing.T) {
	f := newFixture(t)
	resp := decode[screenResponse](t, post(t, f.h, `{"filters":{"indicators":{"rsi14":{"max":45}},"price":{"min":1000}},"sort_by":"rsi14","limit":200}`))
	if resp.Total == 0 || resp.Total == symbols.Starter().Len() {
		t.Fatalf("filter selected %d of %d", resp.Total, symbols.Starter().Len())
	}
	for i, m := range resp.Symbols {
		if m.Indicators["rsi14"] > 45 || m.Close < 1000 {
			t.Errorf("%s rsi14 %v close %v", m.Symbol.Ticker, m.Indicators["rsi14"], m.Close)
		}
		if i > 0 && m.Indicators["rsi14"] < resp.Symbols[i-1].Indicators["rsi14"] {
			t.Errorf("not ascending at %d", i)
		}
	}
	resp = decode[screenResponse](t, post(t, f.h, `{"filters":{"sectors":["Banks","Insurance"],"topix500":true},"sort_by":"code"}`))
	for i, m := range resp.Symbols {
		if (m.Symbol.Sector != "Banks" && m.Symbol.Sector != "Insurance") || !m.Symbol.TOPIX500 {
			t.Errorf("%+v", m.Symbol)
		}
		if i > 0 && m.Symbol.Code < resp.Symbols[i-1].Symbol.Code {
			t.Errorf("not by code")
		}
	}
	if resp.Total != 11 {
		t.Errorf("banks and insurers: %d", resp.Total)
	}
}

func TestScreenRefusesTamperedAndForeignCursors(t *testing.T) {
	f := newFixture(t)
	body := `{"sort_by":"price","limit":5}`
	resp := decode[screenResponse](t, post(t, f.h, body))
	if resp.NextCursor == "" {
		t.Fatal("no cursor")
	}
	payload, mac, _ := strings.Cut(resp.NextCursor, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte(`"o":5`), []byte(`"o":0`), 1)) + "." + mac
	flipped := []byte(resp.NextCursor)
	flipped[len(flipped)-2] ^= 1
	for name, cur := range map[string]string{
		"forged offset": forged,
		"flipped mac":   string(flipped),
		"no mac":        payload,
		"garbage":       "%%%",
		"too long":      strings.Repeat("a", 300),
	} {
		w := post(t, f.h, withCursor(body, cur))
		p := decode[httpx.Problem](t, w)
		if w.Code != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "cursor" {
			t.Errorf("%s: %d %+v", name, w.Code, p)
		}
	}
	// A genuine cursor for another query.
	w := post(t, f.h, withCursor(`{"sort_by":"-price","limit":5}`, resp.NextCursor))
	if p := decode[httpx.Problem](t, w); w.Code != 400 || !strings.Contains(p.Errors[0].Reason, "another query") {
		t.Errorf("foreign cursor: %d %+v", w.Code, p)
	}
	if w := post(t, f.h, withCursor(body, resp.NextCursor)); w.Code != 200 {
		t.Errorf("genuine cursor: %d %s", w.Code, w.Body)
	}
}

func TestScreenBadInputNamesTheField(t *testing.T) {
	f := newFixture(t)
	for body, field := range map[string]string{
		`{"sort_by":"vibes"}`:                            "sort_by",
		`{"limit":0}`:                                    "limit",
		`{"limit":100000}`:                               "limit",
		`{"lookback":"1d"}`:                              "lookback",
		`{"filters":{"volume":{"min":5,"max":1}}}`:       "filters.volume",
		`{"filters":{"segments":["Mothers"]}}`:           "filters.segments[0]",
		`{"filters":{"indicators":{"macd":{}}}}`:         "filters.indicators.macd",
		`{"filters":{"market_cap":{"min":-1,"max":-2}}}`: "filters.market_cap",
	} {
		w := post(t, f.h, body)
		p := decode[httpx.Problem](t, w)
		found := false
		for _, e := range p.Errors {
			found = found || e.Field == field
		}
		if w.Code != 400 || !found {
			t.Errorf("%s: %d %+v", body, w.Code, p)
		}
	}
}

func FuzzScreenRequest(f *testing.F) {
	c := newCursorsWithSecret([]byte("0123456789abcdef0123456789abcdef"))
	good, _ := c.encode(context.Background(), position{Offset: 5, Query: "q"})
	for _, s := range []string{`{}`, `{"sort_by":"-rsi14","limit":3,"filters":{"indicators":{"rsi14":{"min":10}}}}`,
		`{"cursor":"` + good + `"}`, `{"cursor":"a.b"}`} {
		f.Add([]byte(s))
	}
	u := symbols.Starter()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		dec, err := httpx.Decode[screenRequest](httptest.NewRecorder(), req, maxBody)
		if err == nil {
			var s screen
			if s, err = parseScreen(dec, u); err == nil && s.cursor != "" {
				_, err = c.decode(context.Background(), s.cursor, s.query())
			}
		}
		if err != nil && httpx.ErrorCode(err).Status() >= 500 {
			t.Fatalf("%v", err)
		}
	})
}

func FuzzCursor(f *testing.F) {
	c := newCursorsWithSecret([]byte("0123456789abcdef0123456789abcdef"))
	good, _ := c.encode(context.Background(), position{Offset: 5, Query: "q"})
	f.Add(good)
	f.Add("e30.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := c.decode(context.Background(), s, "q")
		if err == nil && s != good {
			// Only a cursor this key signed may pass.
			re, _ := c.encode(context.Background(), p)
			if re != s {
				t.Fatalf("accepted a cursor it did not mint: %q", s)
			}
		}
		if err != nil && httpx.ErrorCode(err) != httpx.CodeInvalid {
			t.Fatalf("%v", err)
		}
	})
}
