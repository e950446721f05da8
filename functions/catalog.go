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
	KeyPrefix   string            // its Redis key space (ACL user in production)
	Calls       []string          // services it calls directly (e.g. the ensemble)
	Publishes   []string          // CloudEvent types it emits (a Trigger never feeds a function its own output)
}

// ImportPath is the Go import path of the function's main package.
func (f Function) ImportPath() string {
	if f.Kind == KindGateway {
		return Module + "/gateway/cmd/gateway"
	}
	return Module + "/functions/" + f.Name
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
	nameRE      = regexp.MustCompile(`^[a-z][a-z0-9-]{0,40}[a-z0-9]$`)
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
	}
	if len(errs) > 0 {
		return fmt.Errorf("catalog: %s", strings.Join(errs, "; "))
	}
	return nil
}
