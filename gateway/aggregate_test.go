package gateway_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
)

// overviewRoutes is the catalog's overview with a short part timeout, plus the proxied
// data-stocks route (to trip its breaker from outside the aggregation).
func overviewRoutes(t testing.TB, partTimeout time.Duration) []gateway.Route {
	t.Helper()
	rs := gateway.CompositeRoutes(functions.Catalog())
	if len(rs) != 1 || rs[0].Composite == nil || len(rs[0].Composite.Parts) != 3 {
		t.Fatalf("overview routes: %+v", rs)
	}
	rs[0].Composite.PartTimeout = partTimeout
	return append(rs, defaultRoutes[0])
}

type overview struct {
	Symbol     string                        `json:"symbol"`
	Complete   bool                          `json:"complete"`
	Data       json.RawMessage               `json:"data"`
	Prediction json.RawMessage               `json:"prediction"`
	Score      *gateway.ScoreSummary         `json:"score"`
	Parts      map[string]gateway.PartStatus `json:"parts"`
}

func decodeOverview(t testing.TB, resp *http.Response) overview {
	t.Helper()
	var o overview
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		t.Fatal(err)
	}
	return o
}

// functionsByHost answers as the three functions would, chosen by the Knative host.
type fakeFunctions struct {
	mu     sync.Mutex
	seen   map[string]*http.Request // host → last request
	bodies map[string]string
	data   http.HandlerFunc
	pred   http.HandlerFunc
	score  http.HandlerFunc
}

func (f *fakeFunctions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen[r.Host], f.bodies[r.Host] = r, string(b)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch strings.SplitN(r.Host, ".", 2)[0] {
	case "data-stocks":
		f.data(w, r)
	case "ml-predict":
		f.pred(w, r)
	case "symbols-select":
		f.score(w, r)
	default:
		w.WriteHeader(404)
	}
}

func okJSON(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }
}

const selectAnswer = `{"symbols":[],"scores":[{"symbol":"6758.T","total":0.9,"components":[]},{"symbol":"7203.T","total":0.7,"components":[]}],"metadata":{"criteria":"day_trading","scored":120}}`

func newFakes() *fakeFunctions {
	return &fakeFunctions{
		seen: map[string]*http.Request{}, bodies: map[string]string{},
		data:  okJSON(`{"symbol":"7203.T","period":"1mo","interval":"1d","data_points":[],"total_points":0}`),
		pred:  okJSON(`{"symbol":"7203.T","prediction":"up","probability":0.55}`),
		score: okJSON(selectAnswer),
	}
}

func TestOverviewMergesPartsInParallel(t *testing.T) {
	t.Parallel()
	f := newFakes()
	// Each part waits until all three have arrived: the test hangs (and fails on its deadline)
	// unless the gateway calls them at the same time.
	var arrived sync.WaitGroup
	arrived.Add(3)
	barrier := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { arrived.Done(); arrived.Wait(); next(w, r) }
	}
	f.data, f.pred, f.score = barrier(f.data), barrier(f.pred), barrier(f.score)
	dial := upstream(t, f.ServeHTTP)
	h := newHarness(t, dial, gateway.Config{}, overviewRoutes(t, 10*time.Second))
	viewer := h.newKey(t, "t1", "viewer")

	resp := h.do(t, "GET", "/api/v1/overview/7203.t", viewer)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	o := decodeOverview(t, resp)
	if !o.Complete || o.Symbol != "7203.T" {
		t.Fatalf("overview %+v", o)
	}
	for _, name := range []string{"data", "prediction", "score"} {
		if o.Parts[name].Status != gateway.PartOK || o.Parts[name].HTTPStatus != 200 {
			t.Errorf("part %s: %+v", name, o.Parts[name])
		}
	}
	if !strings.Contains(string(o.Data), `"period":"1mo"`) || !strings.Contains(string(o.Prediction), `"up"`) {
		t.Errorf("values: data %s prediction %s", o.Data, o.Prediction)
	}
	if o.Score == nil || !o.Score.Ranked || o.Score.Rank != 2 || o.Score.Of != 120 || !strings.Contains(string(o.Score.Score), `0.7`) {
		t.Errorf("score %+v", o.Score)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.seen["data-stocks.day-trade.svc.cluster.local"]
	if d == nil || d.Method != "GET" || d.URL.Path != "/api/v1/data/stocks/7203.T" || d.URL.Query().Get("period") != "1mo" || d.URL.Query().Get("interval") != "1d" {
		t.Fatalf("data-stocks call: %+v", d)
	}
	if got := f.bodies["ml-predict.day-trade.svc.cluster.local"]; got != `{"symbol":"7203.T"}` {
		t.Errorf("ml-predict body %q", got)
	}
	if got := f.bodies["symbols-select.day-trade.svc.cluster.local"]; got != `{"count":100}` {
		t.Errorf("symbols-select body %q", got)
	}
	// Every part carries the gateway's identity for its own function, never the caller's key.
	for host, r := range f.seen {
		tok := r.Header.Get(auth.InternalTokenHeader)
		fn := strings.SplitN(host, ".", 2)[0]
		p, err := auth.NewVerifier(h.signer.PublicKey(), fn).Verify(tok)
		if err != nil || p.Tenant != "t1" {
			t.Errorf("%s: identity %v %+v", fn, err, p)
		}
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Api-Key") != "" {
			t.Errorf("%s received the caller's credential", fn)
		}
	}
}

func TestOverviewPartialWhenAPartHangsAndOneFails(t *testing.T) {
	t.Parallel()
	f := newFakes()
	hung := make(chan struct{})
	f.pred = func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // hangs until the gateway gives up on it
		close(hung)
	}
	f.score = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"title":"Internal Server Error","detail":"scoring broke"}`)
	}
	dial := upstream(t, f.ServeHTTP)
	h := newHarness(t, dial, gateway.Config{RetryAttempts: 1}, overviewRoutes(t, 300*time.Millisecond))

	resp := h.do(t, "GET", "/api/v1/overview/7203.T", h.key)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 with a partial answer", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on a partial answer", cc)
	}
	o := decodeOverview(t, resp)
	if o.Complete {
		t.Fatal("complete = true with two failed parts")
	}
	if o.Parts["data"].Status != gateway.PartOK || len(o.Data) == 0 || string(o.Data) == "null" {
		t.Errorf("data: %+v %s", o.Parts["data"], o.Data)
	}
	if p := o.Parts["prediction"]; p.Status != gateway.PartTimeout || string(o.Prediction) != "null" {
		t.Errorf("prediction: %+v %s", p, o.Prediction)
	}
	if p := o.Parts["score"]; p.Status != gateway.PartFailed || p.HTTPStatus != 500 || !strings.Contains(p.Error, "scoring broke") || o.Score != nil {
		t.Errorf("score: %+v %+v", p, o.Score)
	}
	select {
	case <-hung: // the hung call was cancelled, not left running
	case <-time.After(10 * time.Second):
		t.Fatal("the hung part's request was never cancelled")
	}
}

func TestOverviewWhenEveryPartFails(t *testing.T) {
	t.Parallel()
	t.Run("unreachable is 503", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := l.Addr().String()
		l.Close() // nothing listens there: every connection is refused
		h := newHarness(t, dead, gateway.Config{RetryAttempts: 1}, overviewRoutes(t, 2*time.Second))
		resp := h.do(t, "GET", "/api/v1/overview/7203.T", h.key)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		decodeProblem(t, resp)
	})
	t.Run("5xx everywhere is 502", func(t *testing.T) {
		t.Parallel()
		dial := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
		h := newHarness(t, dial, gateway.Config{RetryAttempts: 1}, overviewRoutes(t, 2*time.Second))
		resp := h.do(t, "GET", "/api/v1/overview/7203.T", h.key)
		if resp.StatusCode != 502 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		decodeProblem(t, resp)
	})
	t.Run("unknown symbol is the functions' 404", func(t *testing.T) {
		t.Parallel()
		dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"title":"Not Found","detail":"no data for ZZZZ"}`)
		})
		h := newHarness(t, dial, gateway.Config{}, overviewRoutes(t, 2*time.Second))
		resp := h.do(t, "GET", "/api/v1/overview/ZZZZ", h.key)
		if resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if p := decodeProblem(t, resp); !strings.Contains(p.Detail, "no data for ZZZZ") {
			t.Errorf("detail %q", p.Detail)
		}
	})
}

func TestOverviewRejectsBadInputBeforeCallingAnything(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("upstream called: %s", r.URL) })
	h := newHarness(t, dial, gateway.Config{}, overviewRoutes(t, time.Second))
	noRole := h.newKey(t, "t1", "billing")
	cases := map[string]struct {
		path, key string
		status    int
	}{
		"bad symbol":      {"/api/v1/overview/%3Cscript%3E", h.key, 400},
		"dots":            {"/api/v1/overview/A..B", h.key, 400},
		"no credential":   {"/api/v1/overview/7203.T", "", 401},
		"not a reader":    {"/api/v1/overview/7203.T", noRole, 403},
		"wrong method":    {"/api/v1/overview/7203.T", h.key, 405},
		"symbol too long": {"/api/v1/overview/" + strings.Repeat("A", 40), h.key, 400},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			method := "GET"
			if name == "wrong method" {
				method = "POST"
			}
			resp := h.do(t, method, c.path, c.key)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			decodeProblem(t, resp)
		})
	}
}

func TestOverviewSharesTheUpstreamBreaker(t *testing.T) {
	t.Parallel()
	f := newFakes()
	f.data = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
	dial := upstream(t, f.ServeHTTP)
	cfg := gateway.Config{RetryAttempts: 1}
	cfg.Breaker.MinRequests = 3
	cfg.Breaker.OpenFor = time.Minute
	h := newHarness(t, dial, cfg, overviewRoutes(t, 2*time.Second))
	for i := 0; i < 3; i++ { // trip data-stocks' breaker through the proxied route
		h.do(t, "GET", "/api/v1/data/stocks/7203.T", h.key)
	}
	resp := h.do(t, "GET", "/api/v1/overview/7203.T", h.key)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	o := decodeOverview(t, resp)
	if p := o.Parts["data"]; o.Complete || p.Status != gateway.PartUnavailable || !strings.Contains(p.Error, "circuit open") {
		t.Fatalf("data part with an open breaker: %+v", p)
	}
}

func TestCompositeRoutesSkipMissingFunctions(t *testing.T) {
	t.Parallel()
	var fs []functions.Function
	for _, f := range functions.Catalog() {
		if f.Name != "symbols-select" {
			fs = append(fs, f)
		}
	}
	rs := gateway.CompositeRoutes(fs)
	if len(rs) != 1 || len(rs[0].Composite.Parts) != 2 {
		t.Fatalf("without symbols-select: %+v", rs)
	}
	if rs := gateway.CompositeRoutes(nil); len(rs) != 0 {
		t.Fatalf("with no functions: %+v", rs)
	}
}
