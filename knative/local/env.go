package local

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/day-trade/platform/functions"
)

// childEnv is the environment of one process: the platform's own environment, then the
// catalog's defaults for keys the user did not set, then the Knative runtime contract and
// the local wiring, which always win.
func (p *Platform) childEnv(fn functions.Function, port int) []string {
	ns := p.opts.Namespace
	redisURL := p.redis.url
	if u, ok := p.redisURLs[fn.Name]; ok {
		redisURL = u // its own ACL user (Options.RedisACL)
	}
	wiring := []string{
		"PORT=" + strconv.Itoa(port),
		"BIND_ADDR=127.0.0.1",
		"K_SERVICE=" + fn.Name,
		"K_CONFIGURATION=" + fn.Name,
		"K_REVISION=" + fn.Name + "-00001",
		"POD_NAMESPACE=" + ns,
		"REDIS_URL=" + redisURL,
		"PLATFORM_MODE=local",
		// Where cluster-local Knative hosts are dialled: the gateway (and any function calling
		// a service) sends the request here with Host set to Function.Host(ns).
		"UPSTREAM_DIAL_ADDR=" + p.actAddr,
	}
	// Functions verify the identity token the gateway mints. Only the gateway signs, and the
	// functions whose catalog entry asks for the key as a Secret (the scheduler, which calls
	// functions for tenants on their schedules).
	if fn.Kind == functions.KindGateway {
		wiring = append(wiring, "INTERNAL_TOKEN_KEY="+p.tokenKey)
	} else {
		wiring = append(wiring, "INTERNAL_TOKEN_PUBLIC_KEY="+p.tokenPub)
		if slices.Contains(fn.Secrets, "INTERNAL_TOKEN_KEY") {
			wiring = append(wiring, "INTERNAL_TOKEN_KEY="+p.tokenKey)
		}
	}
	return mergeEnv(p.opts.Env, fn.Env, wiring)
}

// mergeEnv returns base with defaults added for missing keys and overrides applied, one
// entry per key, in base order then sorted.
func mergeEnv(base []string, defaults map[string]string, overrides []string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return
		}
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range base {
		set(kv)
	}
	var missing []string
	for k := range defaults {
		if _, seen := vals[k]; !seen {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		set(k + "=" + defaults[k])
	}
	for _, kv := range overrides {
		set(kv)
	}
	env := make([]string, len(keys))
	for i, k := range keys {
		env[i] = k + "=" + vals[k]
	}
	return env
}
