package gateway

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/gateway/registry"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// RegistryConfig configures the dynamic registry of upstream instances (gateway/registry).
// An upstream with registered instances is balanced across them; one without is served by
// its catalog host, as before.
type RegistryConfig struct {
	// AllowedHosts are the host patterns a registered instance's URL may have (see
	// registry.HostPolicy); default "*.svc.cluster.local". Loopback and metadata addresses
	// pass only when named literally.
	AllowedHosts []string
	// Poll is how often each gateway reads the registry into memory (default 2s): requests
	// never read it.
	Poll time.Duration
	// DefaultTTL is an admin registration's lifetime when it names none (default 60s).
	DefaultTTL time.Duration
}

func (c *RegistryConfig) defaults() {
	if c.AllowedHosts == nil {
		c.AllowedHosts = []string{"*.svc.cluster.local"}
	}
	if c.Poll <= 0 {
		c.Poll = 2 * time.Second
	}
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = time.Minute
	}
}

// balancing is an upstream's share of discovery: its instances, policy and health settings.
type balancing struct {
	pool   *pool
	policy BalancePolicy
	health HealthConfig
	hm     *healthMetrics
}

func (g *Gateway) balancingFor(name, host string) balancing {
	return balancing{pool: newPool(name, "http", host), policy: g.cfg.Balance, health: g.cfg.Health, hm: g.disc.metrics}
}

// discovery is the gateway's side of the registry.
type discovery struct {
	store   *registry.Store
	hosts   *registry.HostPolicy
	metrics *healthMetrics
	ups     atomic.Pointer[[]*upstream] // sorted by name; fixed after New
	down    atomic.Bool                 // the last read failed
	refused sync.Map                    // "upstream/id url" → struct{}: entries refused, logged once
}

func (g *Gateway) initDiscovery() error {
	hosts, err := registry.NewHostPolicy(g.cfg.Registry.AllowedHosts)
	if err != nil {
		return err
	}
	g.disc.hosts = hosts
	g.disc.store = registry.New(g.deps.Redis, Keys)
	g.disc.metrics = registerHealthMetrics(g.deps.Meter, g)
	return nil
}

// publishUpstreams fixes the list the background loops walk (upstreams are made in New only).
func (g *Gateway) publishUpstreams() {
	list := make([]*upstream, 0, len(g.ups))
	for _, u := range g.ups {
		list = append(list, u)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	g.disc.ups.Store(&list)
}

func (g *Gateway) upstreamList() []*upstream {
	if l := g.disc.ups.Load(); l != nil {
		return *l
	}
	return nil
}

// Run keeps this gateway's view of the registry current and runs the active health checks,
// until ctx ends; main starts it beside the server. Without it the gateway serves every
// upstream from its catalog host.
func (g *Gateway) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(g.cfg.Registry.Poll)
		defer t.Stop()
		for {
			_ = g.RefreshRegistry(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	wg.Go(func() { g.runHealth(ctx) })
	wg.Wait()
}

// RefreshRegistry reads the registry once and updates every upstream's instances. While
// Redis is unreachable the instances in force stay (a log line says so once).
func (g *Gateway) RefreshRegistry(ctx context.Context) error {
	return g.refresh(ctx, g.upstreamList()...)
}

func (g *Gateway) refresh(ctx context.Context, ups ...*upstream) error {
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.name
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	live, bad, err := g.disc.store.Live(ctx, names...)
	if err != nil {
		if g.disc.down.CompareAndSwap(false, true) {
			g.log.Warn("registry unreachable; keeping the upstream instances in force", "err", err)
		}
		return err
	}
	if g.disc.down.CompareAndSwap(true, false) {
		g.log.Info("registry reachable again")
	}
	for _, e := range bad {
		if _, seen := g.disc.refused.LoadOrStore(e.Error(), struct{}{}); !seen {
			g.log.Warn("registry entry ignored", "err", e)
		}
	}
	for _, u := range ups {
		g.apply(u, live[u.name])
	}
	return nil
}

// apply makes regs u's instances, keeping the state (health, counts) of those it had. Every
// URL is checked against the host policy again: the registry is only as trustworthy as
// whatever can write to Redis.
func (g *Gateway) apply(u *upstream, regs []registry.Instance) {
	cur := u.pool.instances()
	byID := make(map[string]*instance, len(cur))
	for _, in := range cur {
		if in.registered {
			byID[in.id] = in
		}
	}
	next := make([]*instance, 0, len(regs))
	for _, r := range regs {
		norm, err := g.disc.hosts.Check(r.URL)
		if err == nil && (r.Weight < 1 || r.Weight > registry.MaxWeight) {
			err = errors.New("weight out of range")
		}
		if err != nil {
			if _, seen := g.disc.refused.LoadOrStore(u.name+"/"+r.ID+" "+r.URL, struct{}{}); !seen {
				g.log.Warn("registry entry refused; not routing to it", "upstream", u.name, "id", r.ID, "instance", r.URL, "err", err)
			}
			continue
		}
		in := byID[r.ID]
		if in == nil || in.url != norm {
			scheme, host, _ := strings.Cut(norm, "://")
			in = &instance{id: r.ID, url: norm, scheme: scheme, host: host, registered: true}
		}
		in.weight.Store(int64(r.Weight))
		in.expires.Store(r.ExpiresAt.UnixMilli())
		next = append(next, in)
	}
	sort.Slice(next, func(i, j int) bool { return next[i].id < next[j].id })
	if len(next) == 0 {
		next = append(next, u.pool.def)
	}
	if slices.Equal(next, cur) {
		return
	}
	for _, in := range next {
		if !slices.Contains(cur, in) && in.registered {
			g.log.Info("upstream instance added", "upstream", u.name, "instance", in.url, "id", in.id, "weight", in.weight.Load())
		}
	}
	for _, in := range cur {
		if !slices.Contains(next, in) && in.registered {
			g.log.Info("upstream instance removed", "upstream", u.name, "instance", in.url, "id", in.id)
		}
	}
	if wasCatalog, isCatalog := cur[0] == u.pool.def, next[0] == u.pool.def; wasCatalog != isCatalog {
		src := "registry"
		if isCatalog {
			src = "catalog"
		}
		g.log.Info("upstream now served from the "+src, "upstream", u.name, "instances", len(next))
	}
	u.pool.set(next)
}

// The admin API of the registry.
const (
	pathUpstreams = "/api/v1/gateway/upstreams"
	pathInstances = "/api/v1/gateway/upstreams/{upstream}/instances"
	pathInstance  = "/api/v1/gateway/upstreams/{upstream}/instances/{id}"
)

func registryRoutes() []Route {
	return []Route{
		{Method: http.MethodGet, Path: pathUpstreams, Roles: adminRoles, Idempotent: true},
		{Method: http.MethodGet, Path: pathInstances, Roles: adminRoles, Idempotent: true},
		{Method: http.MethodPost, Path: pathInstances, Roles: adminRoles},
		{Method: http.MethodDelete, Path: pathInstance, Roles: adminRoles, Idempotent: true},
	}
}

func (g *Gateway) registryHandler(rt Route) serveFunc {
	switch rt.Method + " " + rt.Path {
	case "GET " + pathUpstreams:
		return g.listUpstreams
	case "GET " + pathInstances:
		return g.listInstances
	case "POST " + pathInstances:
		return g.registerInstance
	case "DELETE " + pathInstance:
		return g.deregisterInstance
	}
	return nil
}

// InstanceView is one instance as the admin API shows it.
type InstanceView struct {
	ID         string     `json:"id"`
	URL        string     `json:"url"`
	Weight     int64      `json:"weight"`
	Registered bool       `json:"registered"` // false: the catalog's host
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	// State on this gateway replica: healthy, ejected (passive), unhealthy (active checks),
	// or, for an entry of the registry this replica does not route to, pending (not read yet)
	// or refused (its URL fails the host policy).
	State               string     `json:"state"`
	EjectedUntil        *time.Time `json:"ejected_until,omitempty"`
	Outstanding         int64      `json:"outstanding"`
	ConsecutiveFailures int32      `json:"consecutive_failures"`
}

// UpstreamView is one upstream as the admin API shows it.
type UpstreamView struct {
	Name      string         `json:"name"`
	Policy    BalancePolicy  `json:"policy"`
	Source    string         `json:"source"` // catalog or registry
	Instances []InstanceView `json:"instances"`
}

func view(in *instance) InstanceView {
	v := InstanceView{ID: in.id, URL: in.url, Weight: in.weight.Load(), Registered: in.registered, State: "healthy",
		Outstanding: in.outstanding.Load(), ConsecutiveFailures: in.fails.Load()}
	if ms := in.expires.Load(); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		v.ExpiresAt = &t
	}
	if until := in.ejectedUntil.Load(); until > time.Now().UnixNano() {
		t := time.Unix(0, until).UTC()
		v.State, v.EjectedUntil = "ejected", &t
	}
	if in.down.Load() {
		v.State = "unhealthy"
	}
	return v
}

func (u *upstream) view() UpstreamView {
	uv := UpstreamView{Name: u.name, Policy: u.policy, Source: "catalog"}
	for _, in := range u.pool.instances() {
		if in.registered {
			uv.Source = "registry"
		}
		uv.Instances = append(uv.Instances, view(in))
	}
	return uv
}

// listUpstreams: every upstream with the instances this replica routes to and their health.
func (g *Gateway) listUpstreams(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	out := []UpstreamView{}
	for _, u := range g.upstreamList() {
		out = append(out, u.view())
	}
	_ = httpx.Encode(w, http.StatusOK, map[string]any{"upstreams": out})
}

func (g *Gateway) upstreamParam(w http.ResponseWriter, r *http.Request) (*upstream, bool) {
	name := chi.URLParam(r, "upstream")
	for _, u := range g.upstreamList() {
		if u.name == name {
			return u, true
		}
	}
	httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeNotFound, "no upstream %q: instances register under a routed function's name", name))
	return nil, false
}

// listInstances: the registry's entries for one upstream (every replica's truth), with this
// replica's view of each.
func (g *Gateway) listInstances(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	u, ok := g.upstreamParam(w, r)
	if !ok {
		return
	}
	live, _, err := g.disc.store.Live(r.Context(), u.name)
	if err != nil {
		httpx.WriteError(w, r, g.log, registryDown(err))
		return
	}
	mine := map[string]*instance{}
	for _, in := range u.pool.instances() {
		mine[in.id] = in
	}
	out := []InstanceView{}
	for _, e := range live[u.name] {
		v := InstanceView{ID: e.ID, URL: e.URL, Weight: int64(e.Weight), Registered: true, State: "pending"}
		if in := mine[e.ID]; in != nil {
			v = view(in)
		} else if _, err := g.disc.hosts.Check(e.URL); err != nil {
			v.State = "refused"
		}
		t := e.ExpiresAt.UTC()
		v.ExpiresAt = &t
		out = append(out, v)
	}
	_ = httpx.Encode(w, http.StatusOK, map[string]any{"upstream": u.name, "policy": u.policy, "instances": out})
}

type registerRequest struct {
	URL        string `json:"url"`
	Weight     int    `json:"weight,omitempty"`
	ID         string `json:"id,omitempty"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
}

func (g *Gateway) registerInstance(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	u, ok := g.upstreamParam(w, r)
	if !ok {
		return
	}
	req, err := httpx.Decode[registerRequest](w, r, 8<<10)
	if err != nil {
		httpx.WriteError(w, r, nil, err)
		return
	}
	var fields []httpx.FieldError
	if req.Weight < 0 || req.Weight > registry.MaxWeight {
		fields = append(fields, httpx.FieldError{Field: "weight", Reason: "must be 1..1000 (0 or absent: 1)"})
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if req.TTLSeconds == 0 {
		ttl = g.cfg.Registry.DefaultTTL
	}
	if req.TTLSeconds < 0 || ttl < registry.MinTTL || ttl > registry.MaxTTL {
		fields = append(fields, httpx.FieldError{Field: "ttl_seconds", Reason: "must be 1..86400"})
	}
	if req.ID != "" && !validInstanceID(req.ID) {
		fields = append(fields, httpx.FieldError{Field: "id", Reason: "1-64 of A-Z a-z 0-9 . _ -"})
	}
	if len(fields) > 0 {
		httpx.WriteError(w, r, nil, httpx.Invalid("invalid registration", fields...))
		return
	}
	norm, err := g.disc.hosts.Check(req.URL)
	if err != nil {
		g.log.WarnContext(r.Context(), "registration refused by the host policy", "upstream", u.name, "instance", req.URL, "by", p.Subject, "err", err)
		httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnprocessable, Message: "the instance's URL is not allowed",
			Fields: []httpx.FieldError{{Field: "url", Reason: strings.TrimPrefix(err.Error(), registry.ErrHostNotAllowed.Error()+": ")}}})
		return
	}
	in, err := g.disc.store.Register(r.Context(), u.name, registry.Instance{ID: req.ID, URL: norm, Weight: req.Weight}, ttl)
	if err != nil {
		httpx.WriteError(w, r, g.log, registryDown(err))
		return
	}
	g.log.InfoContext(r.Context(), "upstream instance registered", "upstream", u.name, "instance", norm, "id", in.ID, "weight", in.Weight, "ttl", ttl.String(), "by", p.Subject)
	_ = g.refresh(r.Context(), u) // this replica routes to it at once; the others at their next poll
	w.Header().Set("Location", strings.Replace(strings.Replace(pathInstance, "{upstream}", u.name, 1), "{id}", in.ID, 1))
	_ = httpx.Encode(w, http.StatusCreated, in)
}

func (g *Gateway) deregisterInstance(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	u, ok := g.upstreamParam(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "id")
	found, err := g.disc.store.Deregister(r.Context(), u.name, id)
	if err != nil {
		httpx.WriteError(w, r, g.log, registryDown(err))
		return
	}
	if !found {
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeNotFound, "no instance %q of upstream %s", id, u.name))
		return
	}
	g.log.InfoContext(r.Context(), "upstream instance deregistered", "upstream", u.name, "id", id, "by", p.Subject)
	_ = g.refresh(r.Context(), u)
	_ = httpx.Encode(w, http.StatusOK, map[string]string{"upstream": u.name, "id": id, "status": "deregistered"})
}

func validInstanceID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func registryDown(err error) error {
	if errors.Is(err, registry.ErrInvalid) {
		return httpx.Wrap(err, httpx.CodeInvalid, "invalid registration")
	}
	return &httpx.Error{Code: httpx.CodeUnavailable, Message: "the registry is unavailable", RetryAfter: time.Second, Err: err}
}
