package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func TestKeyStore(t *testing.T) {
	rs := redistest.Start(t)
	rdb, _ := store.Open(rs.URL())
	defer rdb.Close()
	ks := auth.NewKeyStore(rdb, store.NewKeys("gw"))
	ks.CacheTTL = time.Hour
	ctx := context.Background()
	key, rec, err := ks.Create(ctx, auth.KeySpec{Owner: "alice", Tenant: "t1", Roles: []string{"trader"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "dt_live_"+rec.ID+"_") {
		t.Fatalf("key %q", key)
	}
	raw, _ := rdb.Get(ctx, "gw:apikey:"+rec.ID).Result()
	if strings.Contains(raw, key[len(key)-64:]) {
		t.Fatal("the secret is stored in Redis")
	}
	p, err := ks.Authenticate(ctx, key)
	if err != nil || p.Tenant != "t1" || p.Subject != "alice" || p.KeyID != rec.ID {
		t.Fatalf("%+v %v", p, err)
	}
	// Redis dies: the cached record keeps authenticating; an unknown key is unavailable, not invalid.
	rs.Kill()
	if _, err := ks.Authenticate(ctx, key); err != nil {
		t.Fatalf("cached key during outage: %v", err)
	}
	other := "dt_live_0123456789abcdef_" + strings.Repeat("a", 64)
	if _, err := ks.Authenticate(ctx, other); !errors.Is(err, auth.ErrUnavailable) {
		t.Fatalf("unknown key during outage: %v, want ErrUnavailable", err)
	}
}

func FuzzParseAPIKey(f *testing.F) {
	f.Add("dt_live_0123456789abcdef_" + strings.Repeat("a", 64))
	f.Add("dt___")
	f.Add("dt_live_../../_x")
	f.Fuzz(func(t *testing.T, s string) {
		env, id, secret, err := auth.ParseAPIKey(s)
		if err != nil {
			return
		}
		if "dt_"+env+"_"+id+"_"+secret != s || len(id) != 16 || len(secret) != 64 {
			t.Fatalf("parsed %q into %q %q %q", s, env, id, secret)
		}
	})
}
