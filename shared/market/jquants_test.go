package market

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func newTestJQuants(t *testing.T, base string, s *sleeper) *JQuants {
	t.Helper()
	j, err := NewJQuants(Options{JQuantsBaseURL: base, JQuantsAPIKey: "test-key", Now: clock(jst(2024, 1, 15, 18, 0)), Sleep: s.sleep})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJQuantsFollowsPagination(t *testing.T) {
	t.Parallel()
	page1, page2 := mustFixture(t, "jquants_daily_page1.json"), mustFixture(t, "jquants_daily_page2.json")
	rs := &replies{answers: []answer{{status: 200, body: page1}, {status: 200, body: page2}}}
	rs.check = func(t *testing.T, r *http.Request) {
		if r.URL.Path != "/v2/equities/bars/daily" {
			t.Errorf("path %q", r.URL.Path)
		}
		if got := r.Header.Get("x-api-key"); got != "test-key" {
			t.Errorf("x-api-key %q, want test-key", got)
		}
		q := r.URL.Query()
		if q.Get("code") != "72030" || q.Get("from") != "2023-12-15" || q.Get("to") != "2024-01-15" {
			t.Errorf("query %q, want code=72030 from=2023-12-15 to=2024-01-15", r.URL.RawQuery)
		}
		wantKey := ""
		if rs.hits.Load() == 2 {
			wantKey = "value1.eyJDb2RlIjoiNzIwMzAiLCJEYXRlIjoiMjAyNC0wMS0xMCJ9"
		}
		if got := q.Get("pagination_key"); got != wantKey {
			t.Errorf("request %d: pagination_key %q, want %q", rs.hits.Load(), got, wantKey)
		}
	}
	bars, err := newTestJQuants(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"})
	if err != nil {
		t.Fatal(err)
	}
	checkBars(t, bars)
	if rs.hits.Load() != 2 {
		t.Errorf("%d requests, want 2", rs.hits.Load())
	}
	var days []string
	for _, b := range bars {
		days = append(days, b.Time.In(JST).Format("01-02"))
	}
	// 01-12 is the suspended row with null prices.
	if got, want := strings.Join(days, " "), "01-04 01-05 01-09 01-10 01-11 01-15"; got != want {
		t.Errorf("days %s, want %s", got, want)
	}
	want := Bar{Time: jst(2024, 1, 4, 0, 0).UTC(), Open: 2612.5, High: 2669, Low: 2601, Close: 2655, Volume: 30243500, AdjClose: 2655}
	if bars[0] != want {
		t.Errorf("first bar %+v, want %+v", bars[0], want)
	}
}

func TestJQuantsCode(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		code string
		err  error
	}{
		"7203.T":  {code: "72030"},
		"130A.T":  {code: "130A0"},
		"^N225":   {err: ErrUnsupported},
		"AAPL":    {err: ErrUnknownSymbol},
		"7203":    {err: ErrUnknownSymbol},
		"72030.T": {err: ErrUnknownSymbol},
		"7203.N":  {err: ErrUnknownSymbol},
	}
	for sym, tc := range tests {
		code, err := jquantsCode(sym)
		if code != tc.code || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("jquantsCode(%q) = %q, %v; want %q, %v", sym, code, err, tc.code, tc.err)
		}
	}
}

func TestJQuantsErrors(t *testing.T) {
	t.Parallel()
	loop := `{"data":[],"pagination_key":"same"}`
	tests := map[string]struct {
		q        Query
		answers  []answer
		want     error
		wantMsg  string
		wantHits int32
	}{
		"key refused": {
			q: Query{Symbol: "7203.T"}, answers: []answer{{status: 401, body: []byte(`{"message":"The incoming token is invalid or expired."}`)}},
			want: ErrUnavailable, wantMsg: "API key was refused", wantHits: 1,
		},
		"plan without access": {
			q: Query{Symbol: "7203.T"}, answers: []answer{{status: 403, body: []byte(`{"message":"Forbidden"}`)}},
			want: ErrUnavailable, wantMsg: "API key was refused (HTTP 403: Forbidden)", wantHits: 1,
		},
		"dates outside the subscription": {
			q: Query{Symbol: "7203.T", Period: "max"}, answers: []answer{{status: 400, body: []byte(`{"message":"Your subscription covers the following dates: 2022-01-15 ~ . If you want more data, please check other plans:  https://jpx-jquants.com/"}`)}},
			want: ErrUnsupported, wantMsg: "subscription covers", wantHits: 1,
		},
		"minutes": {q: Query{Symbol: "7203.T", Period: "5d", Interval: "5m"}, want: ErrUnsupported, wantMsg: "daily bars only"},
		"weekly":  {q: Query{Symbol: "7203.T", Interval: "1wk"}, want: ErrUnsupported, wantMsg: "daily bars only"},
		"index":   {q: Query{Symbol: "^N225"}, want: ErrUnsupported, wantMsg: "not indices"},
		"foreign": {q: Query{Symbol: "AAPL"}, want: ErrUnknownSymbol, wantMsg: "not a TSE code"},
		"garbage": {
			q: Query{Symbol: "7203.T"}, answers: []answer{{status: 200, body: []byte(`{"data":[{"Date":"04/01/2024","Code":"72030","O":1,"H":1,"L":1,"C":1}]}`)}},
			want: ErrUnavailable, wantMsg: "bad Date", wantHits: 1,
		},
		"no data array": {
			q: Query{Symbol: "7203.T"}, answers: []answer{{status: 200, body: []byte(`{"message":"ok"}`)}},
			want: ErrUnavailable, wantMsg: "no data array", wantHits: 1,
		},
		"pagination loop": {
			q: Query{Symbol: "7203.T"}, answers: []answer{{status: 200, body: []byte(loop)}},
			want: ErrUnavailable, wantMsg: "repeated", wantHits: 2,
		},
		"500 exhausted": {
			q: Query{Symbol: "7203.T"}, answers: []answer{{status: 500, body: []byte(`{"message":"Internal Server Error"}`)}},
			want: ErrUnavailable, wantMsg: "after 4 attempts", wantHits: 4,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.answers == nil {
				tc.answers = []answer{{status: 200, body: []byte(`{"data":[]}`)}}
			}
			rs := &replies{answers: tc.answers}
			_, err := newTestJQuants(t, rs.server(t).URL, &sleeper{}).Bars(context.Background(), tc.q)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.wantMsg)
			}
			if got := rs.hits.Load(); got != tc.wantHits {
				t.Errorf("%d requests, want %d", got, tc.wantHits)
			}
		})
	}
}

func TestJQuantsRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	rs := &replies{answers: []answer{
		{status: 429, header: map[string]string{"Retry-After": "1"}, body: []byte(`{"message":"Too Many Requests"}`)},
		{status: 200, body: mustFixture(t, "jquants_daily_page2.json")},
	}}
	s := &sleeper{}
	bars, err := newTestJQuants(t, rs.server(t).URL, s).Bars(context.Background(), Query{Symbol: "7203.T", Period: "5d"})
	if err != nil || len(bars) != 2 { // 01-11 and 01-15: 01-10 is before the 5d window, 01-12 is null
		t.Fatalf("%d bars, err %v; want 2", len(bars), err)
	}
	if w := s.recorded(); len(w) != 1 || w[0] < time.Second {
		t.Errorf("waits %v, want one of at least the 1s Retry-After", w)
	}
}

func FuzzJQuantsDecode(f *testing.F) {
	f.Add(mustFixture(f, "jquants_daily_page1.json"))
	f.Add(mustFixture(f, "jquants_daily_page2.json"))
	f.Add([]byte(`{"data":[{"Date":"2024-02-30","O":1,"H":1,"L":1,"C":1}]}`))
	f.Add([]byte(`{"data":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		bars, _, err := parseJQuantsDaily(body)
		if err != nil {
			return
		}
		for _, b := range bars {
			if b.Close <= 0 || b.Time.IsZero() {
				t.Fatalf("bad bar kept: %+v", b)
			}
		}
	})
}
