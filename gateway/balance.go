package gateway

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// BalancePolicy chooses which instance of an upstream serves a request.
type BalancePolicy string

const (
	// BalanceDefault is the gateway's Config.Balance (itself Weighted unless set).
	BalanceDefault BalancePolicy = ""
	// RoundRobin takes the instances in turn, ignoring weights.
	RoundRobin BalancePolicy = "round_robin"
	// Weighted is smooth weighted round robin (nginx's): each instance gets its weight's share,
	// interleaved rather than in bursts; with equal weights it is round robin.
	Weighted BalancePolicy = "weighted"
	// LeastOutstanding is the power of two choices: of two instances drawn at random, the one
	// with fewer requests in flight per unit of weight. It steers around a slow instance
	// without the herding of a global "least" pick across gateway replicas.
	LeastOutstanding BalancePolicy = "least_outstanding"
)

// ParseBalancePolicy reads a policy name ("" is the default).
func ParseBalancePolicy(s string) (BalancePolicy, error) {
	switch p := BalancePolicy(s); p {
	case BalanceDefault, RoundRobin, Weighted, LeastOutstanding:
		return p, nil
	}
	return "", fmt.Errorf("load balancing policy %q: want round_robin, weighted or least_outstanding", s)
}

// instance is one address of an upstream: the catalog's Knative host when the registry has
// none, else each registered instance.
type instance struct {
	id         string
	url        string // scheme://host[:port], as shown to operators
	scheme     string
	host       string // dialled and sent as Host
	registered bool
	weight     atomic.Int64
	expires    atomic.Int64 // unix ms of the registration's expiry (0: catalog instance)

	// outstanding counts requests sent and not yet answered in full, kept only while the
	// upstream has more than one instance (it matters only for choosing).
	outstanding atomic.Int64

	// Passive health: consecutive failures, and when an ejection ends (unix ns; 0 = none).
	fails        atomic.Int32
	ejectedUntil atomic.Int64
	ejections    int   // consecutive ejections, for the growing ejection time (pool.mu)
	lastEjectEnd int64 // unix ns (pool.mu)

	// Active health: down after Unhealthy failed probes in a row, up after Healthy passes.
	down               atomic.Bool
	probeOK, probeFail int // touched only by the prober, one goroutine per instance per round

	current int64 // smooth weighted round robin state (pool.mu)
}

func (in *instance) target(req *http.Request) {
	req.URL.Scheme = in.scheme
	req.URL.Host = in.host
	req.Host = in.host
}

// usable: not ejected and not failing its active checks. now is read once per pick, and only
// when some instance has been ejected.
func (in *instance) usable(now *int64) bool {
	if in.down.Load() {
		return false
	}
	until := in.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if *now == 0 {
		*now = time.Now().UnixNano()
	}
	return *now >= until
}

// pool is an upstream's current instances. The list is swapped whole when the registry
// changes, so the request path reads it with one atomic load and no lock; only the weighted
// policy and ejection bookkeeping take the mutex, and only with more than one instance.
type pool struct {
	name  string
	list  atomic.Pointer[[]*instance]
	def   *instance // the catalog's instance, in force while the registry has none
	rr    atomic.Uint64
	mu    sync.Mutex
	multi atomic.Bool // len(list) > 1
}

func newPool(name, scheme, host string) *pool {
	p := &pool{name: name, def: &instance{id: "catalog", url: scheme + "://" + host, scheme: scheme, host: host}}
	p.def.weight.Store(1)
	p.set([]*instance{p.def})
	return p
}

func (p *pool) set(list []*instance) {
	p.mu.Lock()
	for _, in := range list {
		in.current = 0 // a new membership starts the weighted rotation afresh
	}
	p.list.Store(&list)
	p.multi.Store(len(list) > 1)
	p.mu.Unlock()
}

func (p *pool) instances() []*instance { return *p.list.Load() }

// maxTracked is how many instances a request remembers having tried (a bit each).
const maxTracked = 64

// pick chooses an instance by policy, preferring ones that are usable and that this request
// has not tried yet (tried is a bit set of list positions). When every instance is ejected or
// unhealthy it still picks one (panic routing): a request that may fail beats one refused
// for certain.
func (p *pool) pick(policy BalancePolicy, tried uint64) (*instance, int) {
	list := *p.list.Load()
	if len(list) == 1 {
		return list[0], 0
	}
	var now int64
	var idx [maxTracked]uint8
	n := 0
	for pass := 0; pass < 4 && n == 0; pass++ {
		for i, in := range list {
			if i >= maxTracked {
				break
			}
			fresh := tried&(1<<uint(i)) == 0
			ok := in.usable(&now)
			// pass 0: usable and untried; 1: usable; 2: untried; 3: any.
			if (pass == 0 && ok && fresh) || (pass == 1 && ok) || (pass == 2 && fresh) || pass == 3 {
				idx[n] = uint8(i)
				n++
			}
		}
	}
	var i int
	switch policy {
	case RoundRobin:
		i = int(idx[int(p.rr.Add(1)%uint64(n))])
	case LeastOutstanding:
		if n == 1 {
			i = int(idx[0])
			break
		}
		a := int(idx[rand.IntN(n)])
		b := int(idx[rand.IntN(n-1)])
		if b == a {
			b = int(idx[n-1]) // draw the second from the others
		}
		ia, ib := list[a], list[b]
		// fewer in flight per unit of weight; (x+1) so that weights matter when both are idle
		if (ib.outstanding.Load()+1)*ia.weight.Load() < (ia.outstanding.Load()+1)*ib.weight.Load() {
			a = b
		}
		i = a
	default: // Weighted
		p.mu.Lock()
		var total int64
		best := -1
		for _, k := range idx[:n] {
			in := list[k]
			w := in.weight.Load()
			in.current += w
			total += w
			if best < 0 || in.current > list[best].current {
				best = int(k)
			}
		}
		list[best].current -= total
		p.mu.Unlock()
		i = best
	}
	return list[i], i
}

// send makes one attempt on in, counting it as outstanding until its answer's body is closed
// (a slow instance is often slow in its body too); with one instance nothing is counted.
func (p *pool) send(rt http.RoundTripper, in *instance, req *http.Request) (*http.Response, error) {
	in.target(req)
	if !p.multi.Load() {
		return rt.RoundTrip(req)
	}
	in.outstanding.Add(1)
	resp, err := rt.RoundTrip(req)
	if err != nil || resp.StatusCode == http.StatusSwitchingProtocols {
		in.outstanding.Add(-1) // an upgraded connection's body must stay a ReadWriteCloser
		return resp, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, in: in}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	in   *instance
	done atomic.Bool
}

func (b *countedBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.in.outstanding.Add(-1)
	}
	return b.ReadCloser.Close()
}
