package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func TestKeys(t *testing.T) {
	k := store.NewKeys("data")
	if got := k.Key("bars", "7203.T", "1d"); got != "data:bars:7203.T:1d" {
		t.Errorf("Key = %q", got)
	}
	if got := store.NewKeys("data:").Pattern("bars:*"); got != "data:bars:*" {
		t.Errorf("Pattern = %q", got)
	}
}

func TestCheckerFollowsRedis(t *testing.T) {
	srv := redistest.Start(t)
	c, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chk := store.Checker{Client: c}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := chk.CheckHealth(ctx); err != nil {
		t.Fatalf("healthy redis reported unhealthy: %v", err)
	}
	srv.Kill()
	if err := chk.CheckHealth(ctx); err == nil {
		t.Fatal("killed redis reported healthy")
	}
	srv.Restart()
	if err := chk.CheckHealth(ctx); err != nil {
		t.Fatalf("restarted redis still unhealthy: %v", err)
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	if _, err := store.Open("http://nope"); err == nil {
		t.Fatal("want error for non-redis URL")
	}
}
