package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// TestReloadKeepsSLAWindowsBounded: every reload builds each route again; the SLA book must
// reuse each route's window by name (keeping its history) and drop those of removed routes,
// not grow by one window per route per reload.
func TestReloadKeepsSLAWindowsBounded(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	routes := []Route{
		{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Function: "data-stocks", Roles: []string{"viewer"}, Idempotent: true},
		{Method: "DELETE", Path: "/api/v1/data/cache", Function: "data-cache", Roles: []string{"admin"}},
	}
	g, err := New(Config{Namespace: "day-trade"}, routes, Deps{Transport: http.DefaultTransport, Redis: rdb, Signer: auth.NewSigner(pk)})
	if err != nil {
		t.Fatal(err)
	}
	start := g.sla.size()
	if start != len(routes)+len(g.ownRoutes()) {
		t.Fatalf("%d windows for %d routes", start, len(routes)+len(g.ownRoutes()))
	}
	stocks := g.sla.route("GET /api/v1/data/stocks/{symbol}")
	g.sla.record(stocks, 200, time.Millisecond, time.Now())
	for i := 0; i < 50; i++ {
		if err := g.Reload(routes); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.sla.size(); n != start {
		t.Fatalf("after 50 reloads: %d windows, want %d", n, start)
	}
	rep := g.sla.report(time.Now())
	if len(rep) != 1 || rep[0].Requests != 1 {
		t.Fatalf("the route's history was lost on reload: %+v", rep)
	}
	if err := g.Reload(routes[:1]); err != nil {
		t.Fatal(err)
	}
	if n := g.sla.size(); n != start-1 {
		t.Fatalf("after removing a route: %d windows, want %d", n, start-1)
	}
}
