package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/auth"
)

// DevKeyTenant is the tenant of the local development key.
const DevKeyTenant = "dev"

// DevKeyRedisKey holds the local development key in plain text, so that it survives gateway
// restarts within one `make run`. Only EnsureDevKey writes it, and only main calls that, in
// local mode (PLATFORM_MODE=local); a cluster never has it.
var DevKeyRedisKey = Keys.Key("devkey")

// EnsureDevKey returns the local development key (roles admin and trader, tenant "dev"),
// reusing the one in Redis while it still authenticates, else creating one.
func EnsureDevKey(ctx context.Context, rdb redis.Cmdable, ks *auth.KeyStore) (string, error) {
	key, err := rdb.Get(ctx, DevKeyRedisKey).Result()
	switch {
	case err == nil:
		if _, aerr := ks.Authenticate(ctx, key); aerr == nil {
			return key, nil
		}
	case !errors.Is(err, redis.Nil):
		return "", fmt.Errorf("gateway: dev key: %w", err)
	}
	key, _, err = ks.Create(ctx, auth.KeySpec{Owner: "local-developer", Tenant: DevKeyTenant,
		Roles: []string{functions.RoleAdmin, functions.RoleTrader}})
	if err != nil {
		return "", err
	}
	if err := rdb.Set(ctx, DevKeyRedisKey, key, 0).Err(); err != nil {
		return "", fmt.Errorf("gateway: dev key: %w", err)
	}
	return key, nil
}
