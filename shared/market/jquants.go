package market

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// JQuants reads daily bars for TSE equities from the J-Quants API v2.
type JQuants struct {
	base  string
	key   string
	now   func() time.Time
	fetch *fetcher
}

var _ Provider = (*JQuants)(nil)

// NewJQuants returns a J-Quants provider; opts.JQuantsAPIKey is required.
func NewJQuants(opts Options) (*JQuants, error) {
	o := opts.withDefaults()
	if strings.TrimSpace(o.JQuantsAPIKey) == "" {
		return nil, errors.New("market: jquants provider needs Options.JQuantsAPIKey")
	}
	base, err := baseURL(ProviderJQuants, o.JQuantsBaseURL)
	if err != nil {
		return nil, err
	}
	return &JQuants{base: base, key: o.JQuantsAPIKey, now: o.Now, fetch: newFetcher(ProviderJQuants, o)}, nil
}

// maxPages bounds pagination so a server that keeps answering with a key cannot loop us.
const maxPages = 1000

// Bars fetches /v2/equities/bars/daily for the query's dates (JST), following
// pagination_key until the server omits it. Only the 1d interval is served. Indices (^N225)
// are ErrUnsupported: J-Quants serves them from another endpoint this provider does not
// read. Symbols that are not TSE codes (7203.T, 130A.T) are ErrUnknownSymbol. A code with
// no rows in the window gives no bars, not an error: J-Quants does not tell the two apart.
func (j *JQuants) Bars(ctx context.Context, q Query) ([]Bar, error) {
	r, err := resolve(q, j.now)
	if err != nil {
		return nil, err
	}
	if r.Interval != "1d" {
		return nil, fmt.Errorf("%w: jquants serves daily bars only (interval 1d), not %s", ErrUnsupported, r.Interval)
	}
	code, err := jquantsCode(r.Symbol)
	if err != nil {
		return nil, err
	}
	params := url.Values{
		"code": {code},
		"from": {r.from.In(JST).Format(time.DateOnly)},
		"to":   {r.End.In(JST).Format(time.DateOnly)},
	}
	header := http.Header{"X-Api-Key": {j.key}}

	var bars []Bar
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, &UnavailableError{Provider: ProviderJQuants, Err: fmt.Errorf("more than %d pages", maxPages)}
		}
		resp, err := j.fetch.get(ctx, j.base+"/v2/equities/bars/daily?"+params.Encode(), header)
		if err != nil {
			return nil, err
		}
		if err := jquantsStatus(resp); err != nil {
			return nil, err
		}
		rows, next, err := parseJQuantsDaily(resp.body)
		if err != nil {
			return nil, &UnavailableError{Provider: ProviderJQuants, Err: err}
		}
		bars = append(bars, rows...)
		if next == "" {
			break
		}
		if seen[next] {
			return nil, &UnavailableError{Provider: ProviderJQuants, Err: fmt.Errorf("pagination_key %q repeated", next)}
		}
		seen[next] = true
		params.Set("pagination_key", next)
	}
	return window(bars, r.from, r.End), nil
}

// jquantsStatus classifies a non-200 answer (429 and 5xx were already retried).
func jquantsStatus(resp *response) error {
	if resp.status == http.StatusOK {
		return nil
	}
	var body struct {
		Message string `json:"message"`
	}
	msg := "no message"
	if json.Unmarshal(resp.body, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	switch resp.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &UnavailableError{Provider: ProviderJQuants, Err: fmt.Errorf("the API key was refused (HTTP %d: %s); check JQuantsAPIKey and the subscription", resp.status, msg)}
	case http.StatusBadRequest:
		return fmt.Errorf("%w: jquants: %s", ErrUnsupported, msg)
	}
	return &UnavailableError{Provider: ProviderJQuants, Err: fmt.Errorf("HTTP %d: %s", resp.status, msg)}
}

// tseCodeRE matches a Yahoo-style TSE symbol: a four-character local code (digits, or
// digits and letters since 2024 as in 130A) and the ".T" suffix.
var tseCodeRE = regexp.MustCompile(`^([0-9][0-9A-Z]{3})\.T$`)

// jquantsCode maps a Yahoo-style symbol to the five-character J-Quants code: 7203.T →
// 72030 (the fifth character is the check digit J-Quants appends, 0 for common stock).
func jquantsCode(sym string) (string, error) {
	if strings.HasPrefix(sym, "^") {
		return "", fmt.Errorf("%w: jquants serves TSE equities, not indices such as %s", ErrUnsupported, sym)
	}
	m := tseCodeRE.FindStringSubmatch(sym)
	if m == nil {
		return "", fmt.Errorf("%w: jquants: %s is not a TSE code like 7203.T", ErrUnknownSymbol, sym)
	}
	return m[1] + "0", nil
}

// jquantsDaily is one page of /v2/equities/bars/daily.
type jquantsDaily struct {
	Data []struct {
		Date string   `json:"Date"`
		Code string   `json:"Code"`
		O    *float64 `json:"O"`
		H    *float64 `json:"H"`
		L    *float64 `json:"L"`
		C    *float64 `json:"C"`
		Vo   *float64 `json:"Vo"`
		AdjC *float64 `json:"AdjC"`
	} `json:"data"`
	PaginationKey string `json:"pagination_key"`
}

// parseJQuantsDaily decodes one page: bars (rows with a null price skipped, as J-Quants
// sends for suspended days) and the next pagination key, empty on the last page.
func parseJQuantsDaily(body []byte) ([]Bar, string, error) {
	var page jquantsDaily
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, "", fmt.Errorf("malformed daily bars response: %w", err)
	}
	if page.Data == nil {
		return nil, "", errors.New("daily bars response has no data array")
	}
	bars := make([]Bar, 0, len(page.Data))
	for _, row := range page.Data {
		if row.O == nil || row.H == nil || row.L == nil || row.C == nil || *row.C <= 0 {
			continue
		}
		day, err := time.ParseInLocation(time.DateOnly, row.Date, JST)
		if err != nil {
			return nil, "", fmt.Errorf("daily bar for %s has bad Date %q", row.Code, row.Date)
		}
		b := Bar{Time: day.UTC(), Open: *row.O, High: *row.H, Low: *row.L, Close: *row.C, AdjClose: *row.C}
		if row.Vo != nil {
			b.Volume = *row.Vo
		}
		if row.AdjC != nil {
			b.AdjClose = *row.AdjC
		}
		bars = append(bars, b)
	}
	return bars, page.PaginationKey, nil
}
