package market

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// replies serves canned answers in order (the last one repeats) and counts requests.
type replies struct {
	hits    atomic.Int32
	answers []answer
	check   func(t *testing.T, r *http.Request) // optional
}

type answer struct {
	status int
	header map[string]string
	body   []byte
}

func (rs *replies) server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(rs.hits.Add(1)) - 1
		if rs.check != nil {
			rs.check(t, r)
		}
		a := rs.answers[min(n, len(rs.answers)-1)]
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		w.Write(a.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestYahoo(t *testing.T, base string, s *sleeper) *Yahoo {
	t.Helper()
	y, err := NewYahoo(Options{YahooBaseURL: base, Now: clock(jst(2024, 2, 1, 9, 0)), Sleep: s.sleep, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func TestYahooFixtures(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		q        Query
		fixture  string
		wantPath string // escaped
		wantN    int
		first    Bar
		lastTime time.Time
		check    func(t *testing.T, bars []Bar)
	}{
		"daily with adjclose": {
			q: Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"}, fixture: "yahoo_7203.T_1mo_1d.json",
			wantPath: "/v8/finance/chart/7203.T", wantN: 19,
			first: Bar{Time: jst(2024, 1, 4, 0, 0).UTC(), Open: 2612.5, High: 2669, Low: 2601, Close: 2655, Volume: 30243500, AdjClose: 2552.315751},
			// the live bar, stamped 15:00 JST by Yahoo, becomes the day's 00:00 JST bar
			lastTime: jst(2024, 1, 31, 0, 0).UTC(),
		},
		"minutes with halted nulls and no adjclose": {
			q: Query{Symbol: "7203.T", Period: "1d", Interval: "1m"}, fixture: "yahoo_7203.T_1d_1m.json",
			wantPath: "/v8/finance/chart/7203.T", wantN: 294,
			first:    Bar{Time: jst(2024, 1, 31, 9, 0).UTC(), Open: 2984.5, High: 2986, Low: 2982.5, Close: 2983, Volume: 162000, AdjClose: 2983},
			lastTime: jst(2024, 1, 31, 14, 59).UTC(),
		},
		"index with a null volume": {
			q: Query{Symbol: "^n225", Period: "1mo", Interval: "1d"}, fixture: "yahoo_N225_1mo_1d.json",
			wantPath: "/v8/finance/chart/%5EN225", wantN: 19,
			first:    Bar{Time: jst(2024, 1, 4, 0, 0).UTC(), Open: 33584.2, High: 33659.28, Low: 33100.86, Close: 33288.29, Volume: 183800000, AdjClose: 33288.29},
			lastTime: jst(2024, 1, 31, 0, 0).UTC(),
			check: func(t *testing.T, bars []Bar) {
				if b := bars[5]; b.Volume != 0 || b.Close != 35577.11 {
					t.Errorf("2024-01-12 bar %+v, want close 35577.11 and the null volume as 0", b)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := &replies{answers: []answer{{status: 200, body: mustFixture(t, tc.fixture)}}}
			rs.check = func(t *testing.T, r *http.Request) {
				if r.URL.EscapedPath() != tc.wantPath {
					t.Errorf("path %q, want %q", r.URL.EscapedPath(), tc.wantPath)
				}
				if q := r.URL.Query(); q.Get("range") != string(tc.q.Period) || q.Get("interval") != string(tc.q.Interval) {
					t.Errorf("query %q, want range=%s interval=%s", r.URL.RawQuery, tc.q.Period, tc.q.Interval)
				}
				if ua := r.Header.Get("User-Agent"); !strings.Contains(ua, "day-trade-platform") {
					t.Errorf("User-Agent %q", ua)
				}
			}
			bars, err := newTestYahoo(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			checkBars(t, bars)
			if len(bars) != tc.wantN {
				t.Fatalf("%d bars, want %d", len(bars), tc.wantN)
			}
			if bars[0] != tc.first {
				t.Errorf("first bar %+v, want %+v", bars[0], tc.first)
			}
			if last := bars[len(bars)-1].Time; !last.Equal(tc.lastTime) {
				t.Errorf("last bar at %v, want %v", last, tc.lastTime)
			}
			if tc.check != nil {
				tc.check(t, bars)
			}
		})
	}
}

func TestYahooEndUsesPeriod1AndPeriod2(t *testing.T) {
	t.Parallel()
	end := jst(2024, 1, 19, 15, 30)
	rs := &replies{answers: []answer{{status: 200, body: mustFixture(t, "yahoo_7203.T_1mo_1d.json")}}}
	rs.check = func(t *testing.T, r *http.Request) {
		q := r.URL.Query()
		p1, p2 := strconv.FormatInt(end.AddDate(0, -1, 0).Unix(), 10), strconv.FormatInt(end.Unix(), 10)
		if q.Get("range") != "" || q.Get("period1") != p1 || q.Get("period2") != p2 {
			t.Errorf("query %q, want period1=%s period2=%s and no range", r.URL.RawQuery, p1, p2)
		}
	}
	bars, err := newTestYahoo(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), Query{Symbol: "7203.T", Period: "1mo", Interval: "1d", End: end})
	if err != nil {
		t.Fatal(err)
	}
	if last := bars[len(bars)-1].Time; !last.Equal(jst(2024, 1, 19, 0, 0).UTC()) {
		t.Errorf("last bar %v, want 2024-01-19: bars after End are dropped", last.In(JST))
	}
}

func TestYahooErrors(t *testing.T) {
	t.Parallel()
	lengths := `{"chart":{"result":[{"meta":{},"timestamp":[1,2],"indicators":{"quote":[{"open":[1,2],"high":[1,2],"low":[1],"close":[1,2],"volume":[1,2]}]}}],"error":null}}`
	tests := map[string]struct {
		status   int
		body     string
		want     error
		wantHits int32
		wantMsg  string
	}{
		"404 delisted":             {404, string(mustFixture(t, "yahoo_404.json")), ErrUnknownSymbol, 1, "may be delisted"},
		"404 without a body":       {404, "", ErrUnknownSymbol, 1, "unreadable"},
		"200 with Not Found":       {200, string(mustFixture(t, "yahoo_404.json")), ErrUnknownSymbol, 1, "delisted"},
		"422 range too long":       {422, `{"chart":{"result":null,"error":{"code":"Unprocessable Entity","description":"1m data not available for startTime=1 and endTime=2. Only 7 days worth of 1m granularity data are allowed to be fetched per request."}}}`, ErrUnsupported, 1, "7 days"},
		"400 bad interval":         {400, `{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input - interval=7m is not supported"}}}`, ErrUnsupported, 1, "interval=7m"},
		"401 crumb":                {401, `{"finance":{"result":null,"error":{"code":"Unauthorized","description":"Invalid Crumb"}}}`, ErrUnavailable, 1, "HTTP 401"},
		"bad JSON":                 {200, `{"chart":{"result":[{`, ErrUnavailable, 1, "malformed"},
		"HTML from a proxy":        {200, `<html>blocked</html>`, ErrUnavailable, 1, "malformed"},
		"mismatched arrays":        {200, lengths, ErrUnavailable, 1, "2 timestamps but 1 low"},
		"neither result nor error": {200, `{"chart":{"result":[],"error":null}}`, ErrUnavailable, 1, "neither"},
		"503 every time":           {503, `upstream down`, ErrUnavailable, 4, "after 4 attempts"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := &replies{answers: []answer{{status: tc.status, body: []byte(tc.body)}}}
			_, err := newTestYahoo(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), Query{Symbol: "7203.T", Period: "5d", Interval: "1d"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err %q does not mention %q", err, tc.wantMsg)
			}
			if got := rs.hits.Load(); got != tc.wantHits {
				t.Errorf("%d requests, want %d", got, tc.wantHits)
			}
		})
	}
}

func TestYahooEmptyWindowIsNotAnError(t *testing.T) {
	t.Parallel()
	body := `{"chart":{"result":[{"meta":{"currency":"JPY","symbol":"7203.T","exchangeTimezoneName":"Asia/Tokyo","gmtoffset":32400},"indicators":{"quote":[{}],"adjclose":[{}]}}],"error":null}}`
	rs := &replies{answers: []answer{{status: 200, body: []byte(body)}}}
	bars, err := newTestYahoo(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), Query{Symbol: "7203.T", Period: "1d", Interval: "1m"})
	if err != nil || bars == nil || len(bars) != 0 {
		t.Fatalf("bars %#v, err %v; want an empty slice", bars, err)
	}
}

func TestYahooRetries(t *testing.T) {
	t.Parallel()
	ok := answer{status: 200, body: mustFixture(t, "yahoo_7203.T_1mo_1d.json")}
	tests := map[string]struct {
		answers        []answer
		wantHits       int32
		wantErr        error
		wantRetryAfter time.Duration
		wantWaits      []time.Duration // minimum of each wait
	}{
		"429 then 200 honours Retry-After": {
			answers:  []answer{{status: 429, header: map[string]string{"Retry-After": "3"}}, ok},
			wantHits: 2, wantWaits: []time.Duration{3 * time.Second},
		},
		"502 then 500 then 200 backs off": {
			answers:  []answer{{status: 502}, {status: 500}, ok},
			wantHits: 3, wantWaits: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond},
		},
		"503 exhausted carries Retry-After": {
			answers:  []answer{{status: 503, header: map[string]string{"Retry-After": "2"}}},
			wantHits: 4, wantErr: ErrUnavailable, wantRetryAfter: 2 * time.Second,
			wantWaits: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second},
		},
		"Retry-After beyond the limit is not waited for": {
			answers:  []answer{{status: 429, header: map[string]string{"Retry-After": "Thu, 01 Feb 2024 00:05:00 GMT"}}, ok}, // 5 minutes after the clock
			wantHits: 1, wantErr: ErrUnavailable, wantRetryAfter: 5 * time.Minute,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := &replies{answers: tc.answers}
			s := &sleeper{}
			bars, err := newTestYahoo(t, rs.server(t).URL, s).Bars(context.Background(), Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"})
			if tc.wantErr == nil && (err != nil || len(bars) != 19) {
				t.Fatalf("%d bars, err %v", len(bars), err)
			}
			if tc.wantErr != nil {
				var ue *UnavailableError
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("err = %v, want an *UnavailableError", err)
				}
				if ue.RetryAfter != tc.wantRetryAfter || ue.Provider != ProviderYahoo {
					t.Errorf("RetryAfter %v provider %q, want %v yahoo", ue.RetryAfter, ue.Provider, tc.wantRetryAfter)
				}
			}
			if got := rs.hits.Load(); got != tc.wantHits {
				t.Errorf("%d requests, want %d", got, tc.wantHits)
			}
			waits := s.recorded()
			if len(waits) != len(tc.wantWaits) {
				t.Fatalf("waits %v, want %d", waits, len(tc.wantWaits))
			}
			for i, w := range waits {
				if w < tc.wantWaits[i] || w > 8*time.Second {
					t.Errorf("wait %d = %v, want between %v and the 8s cap", i, w, tc.wantWaits[i])
				}
			}
		})
	}
}

func TestYahooStopsRetryingWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	rs := &replies{answers: []answer{{status: 503}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sleeper{onSleep: func(ctx context.Context) error { cancel(); return ctx.Err() }}
	_, err := newTestYahoo(t, rs.server(t).URL, s).Bars(ctx, Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if got := rs.hits.Load(); got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

func TestYahooRetriesTransportErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	s := &sleeper{}
	_, err := newTestYahoo(t, url, s).Bars(context.Background(), Query{Symbol: "7203.T"})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.RetryAfter != 0 {
		t.Fatalf("err = %v, want an *UnavailableError without RetryAfter", err)
	}
	if len(s.recorded()) != 3 {
		t.Errorf("waited %v, want 3 waits for 4 attempts", s.recorded())
	}
}

func TestYahooChecksTheCombinationFirst(t *testing.T) {
	t.Parallel()
	rs := &replies{answers: []answer{{status: 200}}}
	_, err := newTestYahoo(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), Query{Symbol: "7203.T", Period: "1y", Interval: "5m"})
	if !errors.Is(err, ErrUnsupported) || rs.hits.Load() != 0 {
		t.Errorf("err = %v after %d requests, want ErrUnsupported before any", err, rs.hits.Load())
	}
}

func FuzzYahooDecode(f *testing.F) {
	for _, name := range []string{"yahoo_7203.T_1mo_1d.json", "yahoo_7203.T_1d_1m.json", "yahoo_N225_1mo_1d.json", "yahoo_404.json"} {
		f.Add(mustFixture(f, name), "1d")
	}
	f.Add([]byte(`{"chart":{"result":[{"timestamp":[1],"indicators":{"quote":[{"open":[null],"high":[1],"low":[1],"close":[1]}],"adjclose":[{"adjclose":[]}]}}]}}`), "1m")
	f.Add([]byte(`{"chart":{"result":[{"meta":{"exchangeTimezoneName":"X","gmtoffset":-99999999},"timestamp":[-9223372036854775808,9223372036854775807],"indicators":{"quote":[{"open":[1,2],"high":[1,2],"low":[1,2],"close":[1,2]}]}}]}}`), "1wk")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, body []byte, iv string) {
		bars, err := parseYahooChart(body, Interval(iv))
		if err != nil {
			return
		}
		for i, b := range bars {
			if i > 0 && !bars[i-1].Time.Before(b.Time) {
				t.Fatalf("bars out of order at %d", i)
			}
			if b.Open <= 0 || b.High <= 0 || b.Low <= 0 || b.Close <= 0 {
				t.Fatalf("non-positive price kept: %+v", b)
			}
		}
	})
}
