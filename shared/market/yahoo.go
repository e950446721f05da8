package market

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Yahoo reads bars from the Yahoo Finance chart API v8.
type Yahoo struct {
	base  string
	now   func() time.Time
	fetch *fetcher
}

var _ Provider = (*Yahoo)(nil)

// NewYahoo returns a Yahoo provider using opts.YahooBaseURL and opts.HTTPClient.
func NewYahoo(opts Options) (*Yahoo, error) {
	o := opts.withDefaults()
	base, err := baseURL(ProviderYahoo, o.YahooBaseURL)
	if err != nil {
		return nil, err
	}
	return &Yahoo{base: base, now: o.Now, fetch: newFetcher(ProviderYahoo, o)}, nil
}

// Bars fetches /v8/finance/chart/{symbol}. With a zero Query.End it asks for range={period},
// which Yahoo counts back from its own now; with an End it asks for period1/period2 so the
// window ends there.
func (y *Yahoo) Bars(ctx context.Context, q Query) ([]Bar, error) {
	explicitEnd := !q.End.IsZero()
	r, err := resolve(q, y.now)
	if err != nil {
		return nil, err
	}
	if err := checkCombination(r.Period, r.Interval, r.End); err != nil {
		return nil, err
	}
	v := url.Values{"interval": {string(r.Interval)}}
	if explicitEnd {
		v.Set("period1", strconv.FormatInt(r.Period.Span(r.End).Unix(), 10))
		v.Set("period2", strconv.FormatInt(r.End.Unix(), 10))
	} else {
		v.Set("range", string(r.Period))
	}
	u := y.base + "/v8/finance/chart/" + url.PathEscape(r.Symbol) + "?" + v.Encode()

	resp, err := y.fetch.get(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	bars, err := parseYahooChart(resp.body, r.Interval)
	var apiErr *yahooAPIError
	hasAPIErr := errors.As(err, &apiErr)
	switch {
	case resp.status == http.StatusNotFound || (hasAPIErr && apiErr.Code == "Not Found"):
		return nil, fmt.Errorf("%w: yahoo: %s: %s", ErrUnknownSymbol, r.Symbol, describe(err))
	case resp.status == http.StatusBadRequest || resp.status == http.StatusUnprocessableEntity ||
		(hasAPIErr && (apiErr.Code == "Bad Request" || apiErr.Code == "Unprocessable Entity")):
		return nil, fmt.Errorf("%w: yahoo: %s", ErrUnsupported, describe(err))
	case resp.status != http.StatusOK:
		return nil, &UnavailableError{Provider: ProviderYahoo, Err: fmt.Errorf("HTTP %d: %s", resp.status, describe(err))}
	case err != nil:
		return nil, &UnavailableError{Provider: ProviderYahoo, Err: err}
	}
	if explicitEnd {
		bars = window(bars, time.Time{}, r.End)
	}
	return bars, nil
}

// describe turns a parse result of an error response into a message.
func describe(err error) string {
	var apiErr *yahooAPIError
	if errors.As(err, &apiErr) {
		return apiErr.Error()
	}
	if err == nil {
		return "unexpected body with no error object"
	}
	return "unreadable error body"
}

// yahooAPIError is the chart.error object.
type yahooAPIError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

func (e *yahooAPIError) Error() string { return e.Code + ": " + e.Description }

// yahooChart is the part of a chart API v8 response we read.
type yahooChart struct {
	Chart struct {
		Result []yahooResult  `json:"result"`
		Error  *yahooAPIError `json:"error"`
	} `json:"chart"`
}

type yahooResult struct {
	Meta struct {
		Currency             string `json:"currency"`
		Symbol               string `json:"symbol"`
		ExchangeTimezoneName string `json:"exchangeTimezoneName"`
		GMTOffset            int    `json:"gmtoffset"`
	} `json:"meta"`
	Timestamp  []int64 `json:"timestamp"`
	Indicators struct {
		Quote []struct {
			Open   []*float64 `json:"open"`
			High   []*float64 `json:"high"`
			Low    []*float64 `json:"low"`
			Close  []*float64 `json:"close"`
			Volume []*float64 `json:"volume"`
		} `json:"quote"`
		AdjClose []struct {
			AdjClose []*float64 `json:"adjclose"`
		} `json:"adjclose"`
	} `json:"indicators"`
}

// parseYahooChart decodes a chart API v8 body into bars, oldest first. Bars with a null or
// non-positive price (halted minutes) are skipped; a null volume is 0; a missing adjclose is
// the close. Daily and longer bars are stamped 00:00 JST of their exchange date. The error is
// a *yahooAPIError when the body carries chart.error.
func parseYahooChart(body []byte, iv Interval) ([]Bar, error) {
	var c yahooChart
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("malformed chart response: %w", err)
	}
	if c.Chart.Error != nil {
		return nil, c.Chart.Error
	}
	if len(c.Chart.Result) == 0 {
		return nil, errors.New("chart response has neither result nor error")
	}
	res := c.Chart.Result[0]
	n := len(res.Timestamp)
	if n == 0 {
		return []Bar{}, nil // a valid symbol with no trades in the window
	}
	if len(res.Indicators.Quote) == 0 {
		return nil, errors.New("chart response has timestamps but no quote block")
	}
	qt := res.Indicators.Quote[0]
	for _, a := range []struct {
		name string
		vals []*float64
	}{{"open", qt.Open}, {"high", qt.High}, {"low", qt.Low}, {"close", qt.Close}, {"volume", qt.Volume}} {
		if len(a.vals) != n && (a.name != "volume" || a.vals != nil) {
			return nil, fmt.Errorf("chart response has %d timestamps but %d %s values", n, len(a.vals), a.name)
		}
	}
	var adj []*float64
	if len(res.Indicators.AdjClose) > 0 {
		adj = res.Indicators.AdjClose[0].AdjClose
		if len(adj) != n {
			return nil, fmt.Errorf("chart response has %d timestamps but %d adjclose values", n, len(adj))
		}
	}
	zone := JST
	if res.Meta.ExchangeTimezoneName != "" {
		zone = time.FixedZone(res.Meta.ExchangeTimezoneName, res.Meta.GMTOffset)
	}

	bars := make([]Bar, 0, n)
	for i, ts := range res.Timestamp {
		o, h, l, cl := qt.Open[i], qt.High[i], qt.Low[i], qt.Close[i]
		if o == nil || h == nil || l == nil || cl == nil || *o <= 0 || *h <= 0 || *l <= 0 || *cl <= 0 {
			continue
		}
		b := Bar{Time: time.Unix(ts, 0).UTC(), Open: *o, High: *h, Low: *l, Close: *cl, AdjClose: *cl}
		if !iv.Intraday() {
			// Yahoo stamps daily bars at the session open; ours start at 00:00 JST of the date.
			y, m, d := b.Time.In(zone).Date()
			b.Time = time.Date(y, m, d, 0, 0, 0, 0, JST).UTC()
		}
		if qt.Volume != nil && qt.Volume[i] != nil {
			b.Volume = *qt.Volume[i]
		}
		if adj != nil && adj[i] != nil {
			b.AdjClose = *adj[i]
		}
		bars = append(bars, b)
	}
	return sortBars(bars), nil
}
