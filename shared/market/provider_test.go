package market

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	csvDir := filepath.Join("testdata", "tse-daily")
	tests := map[string]struct {
		name    string
		opts    Options
		want    string // type name
		wantErr string
	}{
		"default":             {name: "", want: "*market.Synthetic"},
		"synthetic":           {name: ProviderSynthetic, want: "*market.Synthetic"},
		"yahoo with defaults": {name: ProviderYahoo, want: "*market.Yahoo"},
		"case and spaces":     {name: " Yahoo ", want: "*market.Yahoo"},
		"yahoo bad URL":       {name: ProviderYahoo, opts: Options{YahooBaseURL: "query1.finance.yahoo.com"}, wantErr: "absolute http(s) URL"},
		"jquants":             {name: ProviderJQuants, opts: Options{JQuantsAPIKey: "k"}, want: "*market.JQuants"},
		"jquants without key": {name: ProviderJQuants, wantErr: "needs Options.JQuantsAPIKey"},
		"csv":                 {name: ProviderCSV, opts: Options{CSVDir: csvDir}, want: "*market.CSV"},
		"csv without dir":     {name: ProviderCSV, wantErr: "needs Options.CSVDir"},
		"csv missing dir":     {name: ProviderCSV, opts: Options{CSVDir: filepath.Join("testdata", "nope")}, wantErr: "no such file"},
		"csv dir is a file":   {name: ProviderCSV, opts: Options{CSVDir: filepath.Join(csvDir, "7203.T.csv")}, wantErr: "not a directory"},
		"unknown provider":    {name: "bloomberg", wantErr: `unknown provider "bloomberg"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tc.name, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", p); got != tc.want {
				t.Errorf("New(%q) = %s, want %s", tc.name, got, tc.want)
			}
		})
	}
}

// Every provider, built through New, keeps the same promises for the same query.
func TestProvidersKeepTheContract(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/v8/finance/chart/{symbol}", func(w http.ResponseWriter, r *http.Request) {
		w.Write(mustFixture(t, "yahoo_7203.T_1mo_1d.json"))
	})
	mux.HandleFunc("/v2/equities/bars/daily", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("pagination_key") == "" {
			w.Write(mustFixture(t, "jquants_daily_page1.json"))
			return
		}
		w.Write(mustFixture(t, "jquants_daily_page2.json"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	opts := Options{
		Now:            clock(jst(2024, 1, 31, 16, 0)),
		YahooBaseURL:   srv.URL,
		JQuantsBaseURL: srv.URL,
		JQuantsAPIKey:  "k",
		CSVDir:         filepath.Join("testdata", "tse-daily"),
	}
	for _, name := range []string{ProviderSynthetic, ProviderYahoo, ProviderJQuants, ProviderCSV} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := New(name, opts)
			if err != nil {
				t.Fatal(err)
			}
			bars, err := p.Bars(context.Background(), Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"})
			if err != nil {
				t.Fatal(err)
			}
			if len(bars) == 0 {
				t.Fatal("no bars")
			}
			checkBars(t, bars)
			for _, b := range bars {
				if h, m := b.Time.In(JST).Hour(), b.Time.In(JST).Minute(); h != 0 || m != 0 {
					t.Fatalf("daily bar at %v, want 00:00 JST", b.Time.In(JST))
				}
			}
		})
	}
}
