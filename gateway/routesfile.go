package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
)

// RoutesFile is the gateway's routes file (YAML, path in GATEWAY_ROUTES_FILE). Its routes are
// merged over the catalog's: an entry whose method and path match a catalog route changes
// that route's policy (only the fields it sets), `remove: true` drops it, and any other entry
// adds a route to a catalog function. For example:
//
//	routes:
//	  - method: GET
//	    path: /api/v1/quotes/{symbol}        # a new public path...
//	    function: data-stocks
//	    rewrite: /api/v1/data/stocks/{symbol} # ...served by the function's own path
//	    roles: [viewer, trader, admin]
//	    idempotent: true
//	    cache_ttl: 30s
//	    timeout: 2s
//	    rate_limit: {rate: 10, burst: 20, period: 1s}
//	    tenant_rate_limit: {rate: 50, burst: 100, period: 1s} # all of a tenant's callers together
//	    daily_quota: 1000                     # per caller per UTC day
//	    monthly_quota: 20000                  # per caller per UTC month
//	    on_limiter_down: open                 # or closed
//	    load_balancing: least_outstanding     # or round_robin, weighted (default)
//	    request_headers: {set: {X-Client: web}, remove: [X-Debug]}
//	    response_headers: {set: {Cache-Control: "max-age=30"}, remove: [X-Upstream]}
//	  - method: DELETE
//	    path: /api/v1/data/cache
//	    remove: true
type RoutesFile struct {
	Routes []FileRoute `json:"routes"`
}

// FileRoute is one entry of the routes file; unset fields keep the catalog route's value.
type FileRoute struct {
	Method          string       `json:"method"`
	Path            string       `json:"path"`
	Remove          bool         `json:"remove,omitempty"`
	Function        string       `json:"function,omitempty"`
	Rewrite         string       `json:"rewrite,omitempty"`
	Roles           []string     `json:"roles,omitempty"`
	Idempotent      *bool        `json:"idempotent,omitempty"`
	CacheTTL        *Duration    `json:"cache_ttl,omitempty"`
	Timeout         *Duration    `json:"timeout,omitempty"`
	RateLimit       *FileLimit   `json:"rate_limit,omitempty"`
	TenantRateLimit *FileLimit   `json:"tenant_rate_limit,omitempty"`
	DailyQuota      *int         `json:"daily_quota,omitempty"`
	MonthlyQuota    *int         `json:"monthly_quota,omitempty"`
	OnLimiterDown   *string      `json:"on_limiter_down,omitempty"` // open, closed or auto
	RequestHeaders  *HeaderEdits `json:"request_headers,omitempty"`
	ResponseHeaders *HeaderEdits `json:"response_headers,omitempty"`
	LoadBalancing   *string      `json:"load_balancing,omitempty"` // round_robin, weighted, least_outstanding
}

// FileLimit is a rate limit in the routes file.
type FileLimit struct {
	Rate   int      `json:"rate"`
	Burst  int      `json:"burst,omitempty"`
	Period Duration `json:"period,omitempty"`
}

// HeaderEdits sets and removes headers.
type HeaderEdits struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// Duration reads Go duration strings ("1.5s", "2m") from the routes file.
type Duration time.Duration

// UnmarshalJSON accepts only a duration string, never a bare number (seconds or nanoseconds?).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MaxRoutesFile bounds the routes file.
const MaxRoutesFile = 1 << 20

// ParseRoutesFile decodes a routes file strictly: unknown fields, duplicate keys and
// mistyped values are errors.
func ParseRoutesFile(b []byte) (RoutesFile, error) {
	var f RoutesFile
	if len(b) > MaxRoutesFile {
		return f, fmt.Errorf("routes file: larger than %d bytes", MaxRoutesFile)
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return f, fmt.Errorf("routes file: %w", err)
	}
	return f, nil
}

var (
	routePathRE = regexp.MustCompile(`^/api/v1(/([A-Za-z0-9._~-]+|\{[a-z][a-z0-9_]*\}))+$`)
	fileMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

// MergeRoutes applies f to base. known says whether a function may be routed to (a catalog
// function): routes reach only the platform's own functions, never an arbitrary host. Every
// problem of the file is reported.
func MergeRoutes(base []Route, f RoutesFile, known func(function string) bool) ([]Route, error) {
	out := slices.Clone(base)
	index := func(method, path string) int {
		return slices.IndexFunc(out, func(r Route) bool { return r.Method == method && r.Path == path })
	}
	var errs []error
	seen := map[string]bool{}
	for i, fr := range f.Routes {
		where := fmt.Sprintf("routes[%d] %s %s", i, fr.Method, fr.Path)
		bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(where+": "+format, a...)) }
		if !slices.Contains(fileMethods, fr.Method) {
			bad("method must be one of %s", strings.Join(fileMethods, ", "))
			continue
		}
		if !routePathRE.MatchString(fr.Path) || strings.Contains(fr.Path, "/../") || strings.Contains(fr.Path, "/./") || strings.HasSuffix(fr.Path, "/..") || strings.HasSuffix(fr.Path, "/.") {
			bad("path must be under /api/v1, with plain segments and {param}s")
			continue
		}
		key := fr.Method + " " + fr.Path
		if seen[key] {
			bad("declared twice")
			continue
		}
		seen[key] = true
		at := index(fr.Method, fr.Path)
		if fr.Remove {
			if at < 0 {
				bad("remove: no such route")
			} else if fr.Function != "" || fr.Rewrite != "" || fr.Roles != nil || fr.RateLimit != nil || fr.TenantRateLimit != nil || fr.RequestHeaders != nil || fr.ResponseHeaders != nil {
				bad("remove: takes no other field")
			} else {
				out = slices.Delete(out, at, at+1)
			}
			continue
		}
		var rt Route
		if at >= 0 {
			rt = out[at]
		} else {
			rt = Route{Method: fr.Method, Path: fr.Path}
			if fr.Function == "" {
				bad("a new route needs a function")
			}
			if len(fr.Roles) == 0 {
				bad("a new route needs roles (a route without roles admits nobody)")
			}
		}
		if fr.Function != "" {
			switch {
			case rt.Composite != nil:
				bad("an aggregation route has no single function")
			case !known(fr.Function):
				bad("unknown function %q", fr.Function)
			default:
				rt.Function = fr.Function
			}
		}
		if fr.Roles != nil {
			rt.Roles = slices.Clone(fr.Roles)
			if slices.Contains(rt.Roles, "") {
				bad("empty role")
			}
		}
		if fr.Idempotent != nil {
			rt.Idempotent = *fr.Idempotent
		}
		if fr.CacheTTL != nil {
			if time.Duration(*fr.CacheTTL) > 0 && fr.Method != http.MethodGet {
				bad("cache_ttl applies to GET routes only")
			}
			rt.CacheTTL = time.Duration(*fr.CacheTTL)
		}
		if fr.Timeout != nil {
			rt.Timeout = time.Duration(*fr.Timeout)
		}
		if l := fr.RateLimit; l != nil {
			if l.Rate <= 0 || l.Burst < 0 {
				bad("rate_limit: rate must be positive and burst not negative")
			}
			rt.RateLimit = Limit{Rate: l.Rate, Burst: l.Burst, Period: time.Duration(l.Period)}
		}
		if l := fr.TenantRateLimit; l != nil {
			if l.Rate <= 0 || l.Burst < 0 {
				bad("tenant_rate_limit: rate must be positive and burst not negative")
			}
			rt.TenantRateLimit = Limit{Rate: l.Rate, Burst: l.Burst, Period: time.Duration(l.Period)}
		}
		if fr.DailyQuota != nil {
			if *fr.DailyQuota < 0 {
				bad("daily_quota must not be negative")
			}
			rt.DailyQuota = *fr.DailyQuota
		}
		if fr.MonthlyQuota != nil {
			if *fr.MonthlyQuota < 0 {
				bad("monthly_quota must not be negative")
			}
			rt.MonthlyQuota = *fr.MonthlyQuota
		}
		if m := fr.OnLimiterDown; m != nil {
			switch *m {
			case "open":
				rt.OnLimiterDown = FailOpen
			case "closed":
				rt.OnLimiterDown = FailClosed
			case "auto", "":
				rt.OnLimiterDown = FailAuto
			default:
				bad("on_limiter_down must be open, closed or auto")
			}
		}
		if fr.LoadBalancing != nil {
			p, err := ParseBalancePolicy(*fr.LoadBalancing)
			if err != nil {
				bad("%v", err)
			}
			rt.Balance = p
		}
		if fr.Rewrite != "" || fr.RequestHeaders != nil || fr.ResponseHeaders != nil {
			t := &Transform{Rewrite: fr.Rewrite}
			if rt.Transform != nil {
				*t = *rt.Transform
				if fr.Rewrite != "" {
					t.Rewrite = fr.Rewrite
				}
			}
			if h := fr.RequestHeaders; h != nil {
				t.RequestSet, t.RequestRemove = h.Set, h.Remove
			}
			if h := fr.ResponseHeaders; h != nil {
				t.ResponseSet, t.ResponseRemove = h.Set, h.Remove
			}
			if t.Rewrite != "" && rt.Composite != nil {
				bad("an aggregation route cannot be rewritten")
			}
			if err := t.Validate(rt.Path); err != nil {
				bad("%v", err)
			}
			rt.Transform = t
		}
		if at >= 0 {
			out[at] = rt
		} else {
			out = append(out, rt)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// LoadRoutesFile reads the file at path and merges it over base.
func LoadRoutesFile(path string, base []Route, known func(string) bool) ([]Route, error) {
	b, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseRoutesFile(b)
	if err != nil {
		return nil, err
	}
	return MergeRoutes(base, f, known)
}

func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxRoutesFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRoutesFile {
		return nil, fmt.Errorf("routes file %s: larger than %d bytes", path, MaxRoutesFile)
	}
	return b, nil
}

// Reload replaces the route table with routes, whole and at once: a request already routed
// finishes on the table it started with, the next one sees the new table. On error nothing
// changes. Routes may name only functions the gateway was built with (their breakers,
// bulkheads and metrics live as long as the gateway); a new function needs a restart.
func (g *Gateway) Reload(routes []Route) error {
	g.reload.Lock()
	defer g.reload.Unlock()
	for _, rt := range routes {
		fns := []string{rt.Function}
		if rt.Composite != nil {
			fns = fns[:0]
			for _, p := range rt.Composite.Parts {
				fns = append(fns, p.Function)
			}
		}
		for _, fn := range fns {
			if _, ok := g.ups[fn]; fn != "" && !ok {
				return fmt.Errorf("gateway: route %s %s: function %s was not routed at start; restart the gateway to add it", rt.Method, rt.Path, fn)
			}
		}
	}
	r, err := g.buildRouter(routes)
	if err != nil {
		return err
	}
	g.router.Store(r)
	served := map[string]bool{}
	for _, rt := range append(slices.Clone(routes), g.ownRoutes()...) {
		served[rt.Method+" "+rt.Path] = true
	}
	g.sla.retain(func(name string) bool { return served[name] })
	return nil
}

// RoutesWatcher reloads the gateway's routes when the routes file changes (polled) or on a
// signal (SIGHUP in main). A file that does not parse or merge is refused with a log line and
// the routes in force stay.
type RoutesWatcher struct {
	G     *Gateway
	Path  string
	Base  []Route // the catalog's routes the file is merged over
	Known func(function string) bool
	Log   *slog.Logger

	last fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
	sum  []byte // the content, to tell a touch from a change
}

// Run polls every interval and reloads on each value from signals, until ctx ends.
func (w *RoutesWatcher) Run(ctx context.Context, every time.Duration, signals <-chan os.Signal) {
	if every <= 0 {
		every = 2 * time.Second
	}
	if st, ok := w.stamp(); ok { // the file as loaded at start
		st.sum, _ = readLimited(w.Path)
		w.last = st
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
			w.Check(true)
		case <-t.C:
			w.Check(false)
		}
	}
}

func (w *RoutesWatcher) stamp() (fileStamp, bool) {
	st, err := os.Stat(w.Path)
	if err != nil {
		return fileStamp{}, false
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}, true
}

// Check reloads when the file changed since the last load (or always, when forced) and
// reports whether the routes in force changed.
func (w *RoutesWatcher) Check(force bool) bool {
	st, ok := w.stamp()
	if !ok && !force {
		return false
	}
	if !force && st.mod.Equal(w.last.mod) && st.size == w.last.size {
		return false
	}
	b, err := readLimited(w.Path)
	if err != nil {
		w.Log.Error("routes file unreadable; keeping the routes in force", "path", w.Path, "err", err)
		w.last = st
		return false
	}
	if !force && bytes.Equal(b, w.last.sum) {
		w.last.mod, w.last.size = st.mod, st.size
		return false
	}
	st.sum = b
	w.last = st
	f, err := ParseRoutesFile(b)
	var routes []Route
	if err == nil {
		routes, err = MergeRoutes(w.Base, f, w.Known)
	}
	if err == nil {
		err = w.G.Reload(routes)
	}
	if err != nil {
		w.Log.Error("routes file refused; keeping the routes in force", "path", w.Path, "err", err)
		return false
	}
	w.Log.Info("routes reloaded", "path", w.Path, "routes", len(routes), "file_entries", len(f.Routes))
	return true
}

// CatalogFunctions says which functions the routes file may route to: the catalog's
// functions and services, never the gateway itself.
func CatalogFunctions(fs []functions.Function) func(string) bool {
	names := map[string]bool{}
	for _, f := range fs {
		if f.Kind != functions.KindGateway {
			names[f.Name] = true
		}
	}
	return func(name string) bool { return names[name] }
}
