package registry_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func newStore(t *testing.T) (*registry.Store, *redistest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return registry.New(rdb, store.NewKeys("gw")), rs
}

func TestRegisterListDeregister(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	a, err := s.Register(ctx, "data-stocks", registry.Instance{URL: "http://10.0.0.1:8080", Weight: 3}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != registry.IDFor("http://10.0.0.1:8080") || a.Weight != 3 || time.Until(a.ExpiresAt) <= 0 {
		t.Fatalf("registered %+v", a)
	}
	if _, err := s.Register(ctx, "data-stocks", registry.Instance{URL: "http://10.0.0.2:8080", ID: "b"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The same URL again is a renewal, not a second instance.
	if _, err := s.Register(ctx, "data-stocks", registry.Instance{URL: "http://10.0.0.1:8080", Weight: 5}, time.Minute); err != nil {
		t.Fatal(err)
	}
	live, bad, err := s.Live(ctx, "data-stocks", "ml-predict")
	if err != nil || len(bad) != 0 {
		t.Fatal(err, bad)
	}
	if got := live["data-stocks"]; len(got) != 2 {
		t.Fatalf("live = %+v", live)
	}
	if len(live["ml-predict"]) != 0 {
		t.Fatalf("ml-predict has %+v", live["ml-predict"])
	}
	for _, in := range live["data-stocks"] {
		if in.ID == a.ID && in.Weight != 5 {
			t.Errorf("renewal did not update the weight: %+v", in)
		}
	}
	if ok, err := s.Deregister(ctx, "data-stocks", "b"); err != nil || !ok {
		t.Fatalf("deregister: %v %v", ok, err)
	}
	if ok, _ := s.Deregister(ctx, "data-stocks", "b"); ok {
		t.Fatal("deregistered twice")
	}
	live, _, _ = s.Live(ctx, "data-stocks")
	if len(live["data-stocks"]) != 1 {
		t.Fatalf("after deregister: %+v", live)
	}
}

func TestRegisterRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	cases := map[string]struct {
		up  string
		in  registry.Instance
		ttl time.Duration
	}{
		"bad upstream": {"Data_Stocks", registry.Instance{URL: "http://a"}, time.Minute},
		"key in name":  {"a}b", registry.Instance{URL: "http://a"}, time.Minute},
		"bad id":       {"data-stocks", registry.Instance{URL: "http://a", ID: "a b"}, time.Minute},
		"weight":       {"data-stocks", registry.Instance{URL: "http://a", Weight: registry.MaxWeight + 1}, time.Minute},
		"neg weight":   {"data-stocks", registry.Instance{URL: "http://a", Weight: -1}, time.Minute},
		"short ttl":    {"data-stocks", registry.Instance{URL: "http://a"}, time.Millisecond},
		"no url":       {"data-stocks", registry.Instance{}, time.Minute},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Register(ctx, c.up, c.in, c.ttl); !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestHeartbeatLapse: an instance that stops renewing (its process is gone) disappears once
// its TTL passes by Redis's clock; one that stops cleanly deregisters at once.
func TestHeartbeatLapse(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Register(ctx, "data-stocks", registry.Instance{URL: "http://10.0.0.9:80"}, time.Second); err != nil {
		t.Fatal(err)
	}
	hbCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		s.Heartbeat(hbCtx, "data-stocks", registry.Instance{URL: "http://10.0.0.7:80"}, time.Second, nil)
		close(done)
	}()
	waitFor(t, func() bool {
		live, _, err := s.Live(ctx, "data-stocks")
		if err != nil {
			t.Fatal(err)
		}
		return len(live["data-stocks"]) == 1 && live["data-stocks"][0].URL == "http://10.0.0.7:80"
	}, "the unrenewed instance to lapse while the heartbeating one stays")
	stop()
	<-done
	live, _, _ := s.Live(ctx, "data-stocks")
	if n := len(live["data-stocks"]); n != 0 {
		t.Fatalf("after the heartbeat stopped: %d instances", n)
	}
}

// TestHeartbeatSurvivesRedisRestart: the heartbeat keeps trying while Redis is down and
// registers again once it is back (a restarted Redis has lost the entry).
func TestHeartbeatSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	s, rs := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Heartbeat(ctx, "data-stocks", registry.Instance{URL: "http://10.0.0.7:80"}, time.Second, nil)
	live := func() int {
		l, _, err := s.Live(ctx, "data-stocks")
		if err != nil {
			return -1
		}
		return len(l["data-stocks"])
	}
	waitFor(t, func() bool { return live() == 1 }, "first registration")
	rs.Kill()
	rs.Restart()
	waitFor(t, func() bool { return live() == 1 }, "registration after the Redis restart")
}

// TestDialControlRefusesMetadata: the dialer guard refuses before any packet is sent.
func TestDialControlRefusesMetadata(t *testing.T) {
	t.Parallel()
	var dialled atomic.Int32
	d := &net.Dialer{Timeout: time.Second, Control: registry.DialControl}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			dialled.Add(1)
		}
		return c, err
	}}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]:80/", "http://0.0.0.0:80/", "http://[::ffff:169.254.169.254]/"} {
		req, _ := http.NewRequest("GET", u, nil)
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, registry.ErrDialForbidden) {
			t.Errorf("%s: err = %v, want ErrDialForbidden", u, err)
		}
	}
	if dialled.Load() != 0 {
		t.Fatalf("%d connections made", dialled.Load())
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
