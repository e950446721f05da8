// Package functions is the catalog: every function of the platform with its trigger (HTTP
// routes or CloudEvent subscriptions), scaling, timeout and environment. The Knative and
// Lambda manifests, the gateway's default route table and the local platform's process table
// are all generated from it; a new endpoint is one entry here plus one folder beside this file.
package functions

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Module is the Go module path; a function's binary is Module + "/functions/" + Name.
const Module = "github.com/day-trade/platform"

// Kind says how a service is deployed.
type Kind string

const (
	// KindFunction scales to zero and is reached through the gateway (cluster-local).
	KindFunction Kind = "function"
	// KindService is always warm (min-scale >= 1) and called by functions (cluster-local).
	KindService Kind = "service"
	// KindGateway is the one public entry.
	KindGateway Kind = "gateway"
)

// Route is one HTTP endpoint a function serves, under the gateway's /api/v1 prefix. The
// function serves the same path the gateway exposes, so a route needs no rewriting.
type Route struct {
	Method string // GET, POST, DELETE, ...
	Path   string // chi pattern, e.g. /api/v1/data/stocks/{symbol}
	// Roles that may call it (any one suffices); a route with none is denied by the gateway.
	Roles []string
	// Idempotent routes may be retried by the gateway; a POST that places an order may not.
	Idempotent bool
	// CacheTTL lets the gateway cache successful GET answers; 0 disables.
	CacheTTL time.Duration
}

// Subscription is a CloudEvent type a function consumes through a Trigger.
type Subscription struct {
	Type   string // exact CloudEvent type filter
	Source string // optional exact source filter
	Path   string // path the event is POSTed to; "/" by default
	// Delivery overrides DefaultDelivery field by field; the zero value takes it whole.
	Delivery Delivery
}

// Delivery is how the Broker delivers a subscription's events: the Knative Trigger's
// spec.delivery and the local Broker's retry loop both read it (Subscription.Policy), so
// the two cannot drift apart.
type Delivery struct {
	// Retry is how many times a failed delivery is retried after the first attempt; 0 takes
	// the default, a negative value means no retries.
	Retry int
	// BackoffDelay is the first retry's delay; retry n waits BackoffDelay·2^n (Knative's
	// exponential backoffPolicy).
	BackoffDelay time.Duration
	// DeadLetterSink is the catalog function that receives an event whose retries are spent.
	DeadLetterSink string
}

// DeadLetterFunction is the catalog function every Trigger's deadLetterSink names by default.
const DeadLetterFunction = "dead-letter"

// DefaultDelivery is the Broker's and every subscription's delivery unless it overrides it:
// 0.5s, 1s, 2s, 4s, 8s, so a Redis failover fits inside and a poison event is parked after
// about 16s.
var DefaultDelivery = Delivery{Retry: 5, BackoffDelay: 500 * time.Millisecond, DeadLetterSink: DeadLetterFunction}

// Policy is the delivery of s's events to subscriber: s.Delivery over DefaultDelivery, Retry
// clamped at 0, and no dead-letter sink when the subscriber is that sink (a dead letter that
// cannot be stored would loop back to its own sink).
func (s Subscription) Policy(subscriber string) Delivery {
	d := DefaultDelivery
	if s.Delivery.Retry != 0 {
		d.Retry = max(s.Delivery.Retry, 0)
	}
	if s.Delivery.BackoffDelay > 0 {
		d.BackoffDelay = s.Delivery.BackoffDelay
	}
	if s.Delivery.DeadLetterSink != "" {
		d.DeadLetterSink = s.Delivery.DeadLetterSink
	}
	if d.DeadLetterSink == subscriber {
		d.DeadLetterSink = ""
	}
	return d
}

// Scaling mirrors Knative's autoscaling annotations.
type Scaling struct {
	MinScale    int           // autoscaling.knative.dev/min-scale
	MaxScale    int           // autoscaling.knative.dev/max-scale
	Concurrency int           // containerConcurrency (hard limit); 0 = unlimited
	Target      int           // autoscaling.knative.dev/target (soft concurrency target)
	IdleWindow  time.Duration // scale-to-zero-pod-retention-period; the local platform's idle stop
}

// Function is one catalog entry.
type Function struct {
	Name        string
	Kind        Kind
	Description string
	Routes      []Route
	Events      []Subscription
	Scaling     Scaling
	Timeout     time.Duration     // timeoutSeconds: longest request
	Env         map[string]string // non-secret settings (ConfigMap in the cluster)
	Secrets     []string          // env names read from Secrets, never inlined
	KeyPrefix   string            // its own Redis key space
	// RedisKeys are the Redis key patterns (ACL globs such as "jobs:*" or "data:bars:*") the
	// function reads or writes, its pub/sub channels included. Its ACL user in production may
	// touch nothing else, so a key the code uses but this list lacks fails with NOPERM.
	// Empty means its own space, KeyPrefix + ":*" (RedisPatterns).
	RedisKeys []string
	Calls     []string // services it calls directly (e.g. the ensemble)
	Publishes []string // CloudEvent types it emits (a Trigger never feeds a function its own output)
}

// ImportPath is the Go import path of the function's main package.
func (f Function) ImportPath() string {
	if f.Kind == KindGateway {
		return Module + "/gateway/cmd/gateway"
	}
	return Module + "/functions/" + f.Name
}

// RedisPatterns are the key and channel patterns of the function's Redis ACL user.
func (f Function) RedisPatterns() []string {
	if len(f.RedisKeys) == 0 {
		return []string{f.KeyPrefix + ":*"}
	}
	return f.RedisKeys
}

// Host is the function's cluster-local Knative host name in namespace ns.
func (f Function) Host(ns string) string { return f.Name + "." + ns + ".svc.cluster.local" }

// Role names used by routes.
const (
	RoleAdmin  = "admin"
	RoleTrader = "trader"
	RoleViewer = "viewer"
)

var (
	readers = []string{RoleViewer, RoleTrader, RoleAdmin}
	admins  = []string{RoleAdmin}
)

// defaultScaling is what a scale-to-zero function gets unless it says otherwise.
var defaultScaling = Scaling{MinScale: 0, MaxScale: 10, Concurrency: 100, Target: 80, IdleWindow: 60 * time.Second}

// Catalog returns every function, sorted by name. Each domain keeps its entries in its own
// file (catalog_<domain>.go) so that domains grow without touching each other.
func Catalog() []Function {
	var fs []Function
	for _, part := range [][]Function{gatewayFunctions(), dataFunctions(), mlFunctions(), eventFunctions(), executionFunctions(), symbolFunctions(), notificationFunctions()} {
		fs = append(fs, part...)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].Name < fs[j].Name })
	return fs
}

// Lookup returns the named function.
func Lookup(name string) (Function, bool) {
	for _, f := range Catalog() {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,40}[a-z0-9]$`)
	// redisKeyRE allows a key or a trailing-* prefix glob without ACL syntax or spaces: the
	// pattern is written verbatim into an ACL rule.
	redisKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9-]*(:[a-z0-9-]+)*(:\*)?$`)
	eventTypeRE = regexp.MustCompile(`^com\.daytrade(\.[a-z][a-z0-9-]*){2,}$`)
	methods     = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true}
)

// Validate checks the catalog's invariants: unique DNS-safe names, routes under /api/v1
// claimed once, every route with roles, event types in our namespace, sane scaling.
func Validate(fs []Function) error {
	var errs []string
	names := map[string]bool{}
	routes := map[string]string{}
	for _, f := range fs {
		if !nameRE.MatchString(f.Name) {
			errs = append(errs, fmt.Sprintf("%s: name is not a DNS label", f.Name))
		}
		if names[f.Name] {
			errs = append(errs, fmt.Sprintf("%s: duplicate name", f.Name))
		}
		names[f.Name] = true
		switch f.Kind {
		case KindFunction, KindService, KindGateway:
		default:
			errs = append(errs, fmt.Sprintf("%s: unknown kind %q", f.Name, f.Kind))
		}
		s := f.Scaling
		if s.MinScale < 0 || s.MaxScale < 1 || s.MinScale > s.MaxScale {
			errs = append(errs, fmt.Sprintf("%s: scaling min %d max %d", f.Name, s.MinScale, s.MaxScale))
		}
		if f.Kind == KindService && s.MinScale < 1 {
			errs = append(errs, fmt.Sprintf("%s: an always-warm service needs min-scale >= 1", f.Name))
		}
		if f.Kind == KindFunction && s.MinScale == 0 && s.IdleWindow <= 0 {
			errs = append(errs, fmt.Sprintf("%s: scale-to-zero function needs an idle window", f.Name))
		}
		if f.Timeout <= 0 || f.Timeout > 15*time.Minute {
			errs = append(errs, fmt.Sprintf("%s: timeout %s out of range", f.Name, f.Timeout))
		}
		if f.KeyPrefix == "" {
			errs = append(errs, fmt.Sprintf("%s: no Redis key prefix", f.Name))
		}
		for _, k := range f.RedisKeys {
			if !redisKeyRE.MatchString(k) {
				errs = append(errs, fmt.Sprintf("%s: Redis key pattern %q is not a key or a \"prefix:*\" glob", f.Name, k))
			}
		}
		for _, r := range f.Routes {
			if !methods[r.Method] {
				errs = append(errs, fmt.Sprintf("%s: method %q", f.Name, r.Method))
			}
			if !strings.HasPrefix(r.Path, "/api/v1/") {
				errs = append(errs, fmt.Sprintf("%s: route %s not under /api/v1/", f.Name, r.Path))
			}
			if len(r.Roles) == 0 {
				errs = append(errs, fmt.Sprintf("%s: route %s %s declares no roles", f.Name, r.Method, r.Path))
			}
			key := r.Method + " " + r.Path
			if other, dup := routes[key]; dup {
				errs = append(errs, fmt.Sprintf("%s: route %s already served by %s", f.Name, key, other))
			}
			routes[key] = f.Name
		}
		for _, e := range f.Events {
			if !eventTypeRE.MatchString(e.Type) {
				errs = append(errs, fmt.Sprintf("%s: event type %q is not com.daytrade.<domain>.<noun>.<verb>", f.Name, e.Type))
			}
			if d := e.Policy(f.Name); d.BackoffDelay <= 0 || d.Retry > 20 {
				errs = append(errs, fmt.Sprintf("%s: delivery of %s: retry %d backoff %s out of range", f.Name, e.Type, d.Retry, d.BackoffDelay))
			}
		}
		for _, c := range f.Calls {
			if c == f.Name {
				errs = append(errs, fmt.Sprintf("%s: calls itself", f.Name))
			}
		}
	}
	for _, f := range fs {
		for _, c := range f.Calls {
			if !names[c] {
				errs = append(errs, fmt.Sprintf("%s: calls unknown service %q", f.Name, c))
			}
		}
		for _, e := range f.Events {
			// The default sink may be missing (a catalog without it drops spent events);
			// one a subscription names explicitly must exist.
			if s := e.Delivery.DeadLetterSink; s != "" && !names[s] {
				errs = append(errs, fmt.Sprintf("%s: dead-letter sink %q of %s is not in the catalog", f.Name, s, e.Type))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("catalog: %s", strings.Join(errs, "; "))
	}
	return nil
}
