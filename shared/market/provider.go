package market

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Provider names accepted by New.
const (
	ProviderSynthetic = "synthetic" // the default: a deterministic simulated TSE, no network
	ProviderYahoo     = "yahoo"
	ProviderJQuants   = "jquants"
	ProviderCSV       = "csv"
)

// Options configures the providers; each uses only the fields it needs. Zero values take
// the defaults noted.
type Options struct {
	// Now is the clock behind a zero Query.End and Retry-After dates. Default time.Now.
	Now func() time.Time

	// YahooBaseURL defaults to https://query1.finance.yahoo.com.
	YahooBaseURL string
	// JQuantsBaseURL defaults to https://api.jquants.com.
	JQuantsBaseURL string
	// JQuantsAPIKey is sent as x-api-key; required by the jquants provider.
	JQuantsAPIKey string
	// CSVDir holds <SYMBOL>.csv files; required by the csv provider.
	CSVDir string

	// HTTPClient sends provider requests; its Timeout bounds each attempt. Default: a
	// client with a 15s timeout.
	HTTPClient *http.Client
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string
	// MaxAttempts bounds tries per request, first included. Default 4.
	MaxAttempts int
	// BackoffBase is the first retry's nominal wait, doubled each retry. Default 500ms.
	BackoffBase time.Duration
	// BackoffMax caps one wait. Default 8s.
	BackoffMax time.Duration
	// MaxRetryAfter is the longest Retry-After waited for; a longer one ends the request
	// at once with an *UnavailableError carrying it. Default 30s.
	MaxRetryAfter time.Duration
	// Sleep waits between retries and must return early with ctx's error. Tests inject a
	// fake; default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultUserAgent identifies the platform to data providers.
const DefaultUserAgent = "day-trade-platform/1.0 (+https://github.com/day-trade/platform)"

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.YahooBaseURL == "" {
		o.YahooBaseURL = "https://query1.finance.yahoo.com"
	}
	if o.JQuantsBaseURL == "" {
		o.JQuantsBaseURL = "https://api.jquants.com"
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 8 * time.Second
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 30 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	return o
}

// New returns the provider called name ("" means synthetic), checking the options it needs.
func New(name string, opts Options) (Provider, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", ProviderSynthetic:
		return NewSynthetic(opts), nil
	case ProviderYahoo:
		return NewYahoo(opts)
	case ProviderJQuants:
		return NewJQuants(opts)
	case ProviderCSV:
		return NewCSV(opts)
	}
	return nil, fmt.Errorf("market: unknown provider %q (want %s, %s, %s or %s)", name, ProviderSynthetic, ProviderYahoo, ProviderJQuants, ProviderCSV)
}

// baseURL checks a provider base URL and trims its trailing slash.
func baseURL(provider, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("market: %s base URL %q must be an absolute http(s) URL", provider, raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// checkDir validates the csv provider's directory.
func checkDir(dir string) error {
	if dir == "" {
		return errors.New("market: csv provider needs Options.CSVDir")
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("market: csv directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("market: csv directory %q is not a directory", dir)
	}
	return nil
}
