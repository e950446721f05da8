package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/telemetry"
)

// buildWith loads the gateway's config from env as main does and builds it, with stdout
// captured.
func buildWith(t *testing.T, env map[string]string) string {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c cfg
	if err := config.Load(&c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	var stdout bytes.Buffer
	fn, err := builder(&stdout, io.Discard)(ctx, &c, runtime.Deps{Log: slog.New(slog.DiscardHandler), Telemetry: tel, Runtime: c.Runtime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fn.Stop(context.Background()) })
	return stdout.String()
}

// TestDevKeyLine: in local mode the gateway prints its development key on a line that starts
// with "API key:", followed by a curl line with the same key against its own address; the
// key works. Outside local mode it prints nothing, and makes no key.
func TestDevKeyLine(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()

	t.Run("outside local mode", func(t *testing.T) {
		priv, _ := auth.GenerateInternalKey()
		for _, mode := range []string{"", "cluster", "LOCAL", "local "} {
			out := buildWith(t, map[string]string{"REDIS_URL": rs.URL(), "PLATFORM_MODE": mode, "INTERNAL_TOKEN_KEY": priv})
			if out != "" {
				t.Fatalf("PLATFORM_MODE=%q printed %q", mode, out)
			}
			if n, _ := rdb.Exists(ctx, gateway.DevKeyRedisKey).Result(); n != 0 {
				t.Fatalf("PLATFORM_MODE=%q made a development key", mode)
			}
		}
	})

	t.Run("local mode", func(t *testing.T) {
		out := buildWith(t, map[string]string{"REDIS_URL": rs.URL(), "PLATFORM_MODE": "local", "PORT": "18080", "BIND_ADDR": "127.0.0.1"})
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "API key: ") {
			t.Fatalf("printed %q; want an API key line and a curl line", out)
		}
		key := strings.Fields(strings.TrimPrefix(lines[0], "API key: "))[0]
		if !strings.HasPrefix(key, "dt_local_") {
			t.Fatalf("key %q is not a local key", key)
		}
		if !strings.HasPrefix(lines[1], "  curl ") || !strings.Contains(lines[1], "Authorization: Bearer "+key) ||
			!strings.Contains(lines[1], "'http://127.0.0.1:18080/api/v1/") {
			t.Fatalf("curl line %q", lines[1])
		}
		keys := auth.NewKeyStore(rdb, gateway.Keys)
		p, err := keys.Authenticate(ctx, key)
		if err != nil || p.Tenant != gateway.DevKeyTenant {
			t.Fatalf("the printed key: %+v, %v", p, err)
		}
	})
}
