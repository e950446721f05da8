// Command notifications-status serves GET /api/v1/notifications/{id}: a notification and the
// delivery status of each of its channels, to callers of the tenant that owns it (404 for
// anyone else; platform-wide notifications to admins).
package main

import (
	"context"

	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis) }

func main() { runtime.Main[cfg]("notifications-status", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	return runtime.Function{
		// The tenant comes from the gateway's verified token (header X-Tenant only when the
		// function runs without INTERNAL_TOKEN_PUBLIC_KEY, alone or in tests).
		Handler: newServer(d.Log, notify.NewStore(rdb, store.NewKeys("notif"), 0), batch.NewIdentity(c.InternalTokenPublicKey != "")),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
