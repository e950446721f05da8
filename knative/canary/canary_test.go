package canary

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/serving/pkg/apis/serving"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"knative.dev/serving/pkg/client/clientset/versioned/fake"
)

const (
	ns   = "day-trade"
	name = "data-stocks"
	cur  = "data-stocks-00001"
	cand = "data-stocks-00002"
)

func readyConditions() duckv1.Conditions {
	return duckv1.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionTrue}}
}

func revision(rev, owner string, ready bool) *servingv1.Revision {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: rev, Namespace: ns, Labels: map[string]string{serving.ServiceLabelKey: owner}}}
	if ready {
		r.Status.Conditions = readyConditions()
	}
	return r
}

// pinned is a Service after `canary -pin`, with a new revision deployed at 0%.
func pinned() *servingv1.Service {
	s := &servingv1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 3}}
	s.Spec.Traffic = []servingv1.TrafficTarget{target(TagCurrent, cur, 100)}
	s.Status.ObservedGeneration = 3
	s.Status.Conditions = readyConditions()
	s.Status.LatestReadyRevisionName = cand
	s.Status.Traffic = s.Spec.Traffic
	return s
}

// cluster is the fake clientset with a stand-in for Knative's controllers: every update of
// the Service is "reconciled" at once (its Route serves the new split), unless stuck.
type cluster struct {
	t      *testing.T
	cs     *fake.Clientset
	mu     sync.Mutex
	writes [][]servingv1.TrafficTarget
	stuck  bool // the Route never serves a new split
}

func newCluster(t *testing.T, svc *servingv1.Service, objs ...runtime.Object) *cluster {
	t.Helper()
	if objs == nil {
		objs = []runtime.Object{revision(cur, name, true), revision(cand, name, true)}
	}
	c := &cluster{t: t, cs: fake.NewSimpleClientset(append(objs, svc)...)}
	c.cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.UpdateAction).GetObject().(*servingv1.Service)
		traffic := make([]servingv1.TrafficTarget, len(svc.Spec.Traffic))
		for i := range svc.Spec.Traffic {
			svc.Spec.Traffic[i].DeepCopyInto(&traffic[i])
		}
		if n := Sum(traffic); n != 100 {
			t.Errorf("wrote traffic summing to %d%%: %+v", n, traffic)
		}
		// What Knative's webhook checks on a Service's traffic (as ServiceSpec.Validate does).
		if fe := (&servingv1.RouteSpec{Traffic: traffic}).Validate(servingv1.WithDefaultConfigurationName(context.Background())); fe != nil {
			t.Errorf("Knative rejects the traffic block %s: %v", render(traffic), fe)
		}
		c.mu.Lock()
		c.writes = append(c.writes, traffic)
		stuck := c.stuck
		c.mu.Unlock()
		if !stuck {
			svc.Status.Traffic = traffic
		}
		return false, nil, nil // the tracker stores it
	})
	return c
}

func (c *cluster) service() *servingv1.Service {
	c.t.Helper()
	svc, err := c.cs.ServingV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return svc
}

// candidateShares are the candidate percentages written, in order; promotion is "promote".
func (c *cluster) candidateShares() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, w := range c.writes {
		s := "promote"
		for _, t := range w {
			if t.Tag == TagCandidate {
				s = fmt.Sprint(*t.Percent)
			}
		}
		out = append(out, s)
	}
	return out
}

// render is traffic's name inside the reactor, where a parameter shadows it.
func render(ts []servingv1.TrafficTarget) string { return traffic(ts) }

// traffic renders a traffic block as "tag=revision:percent" terms.
func traffic(ts []servingv1.TrafficTarget) string {
	var parts []string
	for _, t := range ts {
		rev := t.RevisionName
		if t.LatestRevision != nil && *t.LatestRevision {
			rev = "@latest"
		}
		p := int64(0)
		if t.Percent != nil {
			p = *t.Percent
		}
		parts = append(parts, fmt.Sprintf("%s=%s:%d", t.Tag, rev, p))
	}
	return strings.Join(parts, ",")
}

// prom is an httptest Prometheus HTTP API. answer decides each query's reply from the
// metric asked for and the candidate share the fake cluster currently serves.
type prom struct {
	*httptest.Server
	mu      sync.Mutex
	queries []string
}

type reply struct {
	status int
	body   string
}

func vector(v string) reply {
	return reply{200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767225600.123,"` + v + `"]}]}}`}
}

var emptyVector = reply{200, `{"status":"success","data":{"resultType":"vector","result":[]}}`}

func newProm(t *testing.T, answer func(metric string) reply) *prom {
	p := &prom{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.FormValue("query")
		p.mu.Lock()
		p.queries = append(p.queries, q)
		p.mu.Unlock()
		metric := "p95"
		if strings.Contains(q, "revision_request_count") {
			metric = "errors"
		}
		rep := answer(metric)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		fmt.Fprint(w, rep.body)
	}))
	t.Cleanup(p.Close)
	return p
}

// clock is a fake clock: Sleep advances it at once.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	cancel func() // called on the n-th sleep, if set
	at     int
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	if c.cancel != nil && len(c.slept) == c.at {
		c.cancel()
	}
	c.mu.Unlock()
	return ctx.Err()
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func options(p *prom, clk *clock, out *bytes.Buffer) Options {
	return Options{
		Namespace: ns, Service: name, Interval: time.Minute, MaxErrorRate: 0.01, MaxP95: 500 * time.Millisecond,
		Sleep: clk.Sleep, Now: clk.Now, Out: out,
	}
}

func run(t *testing.T, c *cluster, m Metrics, o Options) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // only stops a hang
	defer cancel()
	return Run(ctx, c.cs, m, o)
}

func TestCleanRunPromotes(t *testing.T) {
	c := newCluster(t, pinned())
	p := newProm(t, func(metric string) reply {
		if metric == "errors" {
			return vector("0.002")
		}
		return vector("0.120")
	})
	clk := &clock{now: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)}
	var out bytes.Buffer
	res, err := run(t, c, Prometheus{URL: p.URL}, options(p, clk, &out))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != Promoted || res.Current != cur || res.Candidate != cand || len(res.Steps) != 4 {
		t.Fatalf("result %+v", res)
	}
	if got, want := strings.Join(c.candidateShares(), " "), "5 25 50 100 promote"; got != want {
		t.Errorf("candidate shares written %q, want %q", got, want)
	}
	if got, want := traffic(c.service().Spec.Traffic), "current="+cand+":100"; got != want {
		t.Errorf("final traffic %s, want %s", got, want)
	}
	watched := 0
	for _, d := range clk.slept {
		if d == time.Minute {
			watched++
		}
	}
	if watched != 4 {
		t.Errorf("watched %d steps for the interval (sleeps %v), want 4", watched, clk.slept)
	}
	for _, q := range p.queries {
		if !strings.Contains(q, `revision_name="`+cand+`"`) || !strings.Contains(q, `namespace_name="`+ns+`"`) || !strings.Contains(q, "[60s]") {
			t.Errorf("query not about the candidate over the interval: %s", q)
		}
	}
	for _, want := range []string{"step 1/4: candidate 5%, current 95%", "error rate 0.20% (max 1.00%), p95 120ms (max 500ms): ok", "promoted " + cand} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBreachRollsBack(t *testing.T) {
	tests := map[string]struct {
		answer     func(c *cluster) func(string) reply
		wantShares string
		wantReason string
	}{
		"error rate at 25%": {
			answer: func(c *cluster) func(string) reply {
				return func(metric string) reply {
					if metric == "errors" && strings.Join(c.candidateShares(), " ") == "5 25" {
						return vector("0.075")
					}
					if metric == "errors" {
						return vector("0")
					}
					return vector("0.1")
				}
			},
			wantShares: "5 25 0",
			wantReason: "step 25%: error rate 7.50% > max 1.00%",
		},
		"p95 at 5%": {
			answer: func(*cluster) func(string) reply {
				return func(metric string) reply {
					if metric == "errors" {
						return vector("0")
					}
					return vector("0.750")
				}
			},
			wantShares: "5 0",
			wantReason: "step 5%: p95 750ms > max 500ms",
		},
		"p95 beyond the last bucket": {
			answer: func(*cluster) func(string) reply {
				return func(metric string) reply {
					if metric == "errors" {
						return vector("0")
					}
					return vector("+Inf")
				}
			},
			wantShares: "5 0",
			wantReason: "p95 +Inf > max 500ms",
		},
		"no traffic to the candidate": {
			answer: func(*cluster) func(string) reply {
				return func(metric string) reply {
					if metric == "errors" {
						return emptyVector
					}
					return vector("NaN")
				}
			},
			wantShares: "5 0",
			wantReason: "no requests reached " + cand,
		},
		"prometheus refuses the query": {
			answer: func(*cluster) func(string) reply {
				return func(string) reply {
					return reply{400, `{"status":"error","errorType":"bad_data","error":"parse error at char 7"}`}
				}
			},
			wantShares: "5 0",
			wantReason: "cannot read the error rate, failing safe: prometheus refused the query (400 Bad Request, bad_data): parse error at char 7",
		},
		"query gives many series": {
			answer: func(*cluster) func(string) reply {
				return func(string) reply {
					return reply{200, `{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"0"]},{"value":[1,"0"]}]}}`}
				}
			},
			wantShares: "5 0",
			wantReason: "returned 2 series",
		},
		"a proxy answers instead of prometheus": {
			answer: func(*cluster) func(string) reply {
				return func(string) reply { return reply{502, `<html>Bad Gateway</html>`} }
			},
			wantShares: "5 0",
			wantReason: "not its API's JSON",
		},
	}
	for tn, tc := range tests {
		t.Run(tn, func(t *testing.T) {
			c := newCluster(t, pinned())
			p := newProm(t, tc.answer(c))
			var out bytes.Buffer
			res, err := run(t, c, Prometheus{URL: p.URL}, options(p, &clock{}, &out))
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != RolledBack || !strings.Contains(res.Reason, tc.wantReason) {
				t.Fatalf("outcome %s, reason %q; want a rollback for %q\n%s", res.Outcome, res.Reason, tc.wantReason, out.String())
			}
			if got := strings.Join(c.candidateShares(), " "); got != tc.wantShares {
				t.Errorf("candidate shares written %q, want %q", got, tc.wantShares)
			}
			if got, want := traffic(c.service().Spec.Traffic), "current="+cur+":100,candidate="+cand+":0"; got != want {
				t.Errorf("traffic after rollback %s, want %s", got, want)
			}
			if !strings.Contains(out.String(), "rolled back: current "+cur+" 100%, candidate "+cand+" 0%") {
				t.Errorf("output does not say it rolled back:\n%s", out.String())
			}
		})
	}
}

func TestPrometheusDownRollsBackWithAClearMessage(t *testing.T) {
	c := newCluster(t, pinned())
	p := newProm(t, func(string) reply { return vector("0") })
	url := p.URL
	p.Close() // the failure: nothing listens there any more
	var out bytes.Buffer
	res, err := run(t, c, Prometheus{URL: url}, options(p, &clock{}, &out))
	if err != nil {
		t.Fatal(err)
	}
	want := "cannot read the error rate, failing safe: prometheus at " + url + " unreachable"
	if res.Outcome != RolledBack || !strings.Contains(res.Reason, want) {
		t.Fatalf("outcome %s reason %q, want a rollback saying %q", res.Outcome, res.Reason, want)
	}
	if got := strings.Join(c.candidateShares(), " "); got != "5 0" {
		t.Errorf("candidate shares %q, want 5 then 0", got)
	}
	if !strings.Contains(out.String(), want) {
		t.Errorf("output does not explain:\n%s", out.String())
	}
}

func TestAllowNoTrafficPromotes(t *testing.T) {
	c := newCluster(t, pinned())
	p := newProm(t, func(string) reply { return emptyVector })
	o := options(p, &clock{}, &bytes.Buffer{})
	o.AllowNoTraffic = true
	res, err := run(t, c, Prometheus{URL: p.URL}, o)
	if err != nil || res.Outcome != Promoted {
		t.Fatalf("result %+v, %v; want promoted", res, err)
	}
}

func TestRouteThatNeverServesRollsBack(t *testing.T) {
	c := newCluster(t, pinned())
	c.stuck = true
	p := newProm(t, func(string) reply { return vector("0") })
	o := options(p, &clock{}, &bytes.Buffer{})
	o.SettleTimeout = 30 * time.Second
	o.PollInterval = time.Second
	res, err := run(t, c, Prometheus{URL: p.URL}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != RolledBack || !strings.Contains(res.Reason, "did not serve the split within 30s") {
		t.Fatalf("result %+v", res)
	}
	if len(p.queries) != 0 {
		t.Errorf("judged a split that never served: %v", p.queries)
	}
}

func TestInterruptRollsBack(t *testing.T) {
	c := newCluster(t, pinned())
	p := newProm(t, func(string) reply { return vector("0") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := &clock{cancel: cancel, at: 3} // during the second step's watch
	o := options(p, clk, &bytes.Buffer{})
	res, err := Run(ctx, c.cs, Prometheus{URL: p.URL}, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != RolledBack || !strings.Contains(res.Reason, "interrupted") {
		t.Fatalf("result %+v", res)
	}
	if got, want := traffic(c.service().Spec.Traffic), "current="+cur+":100,candidate="+cand+":0"; got != want {
		t.Errorf("traffic %s, want %s", got, want)
	}
}

func TestConflictIsRetried(t *testing.T) {
	c := newCluster(t, pinned())
	conflicts := 2
	c.cs.PrependReactor("update", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "serving.knative.dev", Resource: "services"}, name, fmt.Errorf("the object has been modified"))
		}
		return false, nil, nil
	})
	p := newProm(t, func(string) reply { return vector("0") })
	res, err := run(t, c, Prometheus{URL: p.URL}, options(p, &clock{}, &bytes.Buffer{}))
	if err != nil || res.Outcome != Promoted {
		t.Fatalf("result %+v, %v", res, err)
	}
}

func TestZeroPercentTagsAreKept(t *testing.T) {
	svc := pinned()
	svc.Spec.Traffic = append(svc.Spec.Traffic, servingv1.TrafficTarget{Tag: "latest", LatestRevision: ptr(true), Percent: ptr(int64(0))})
	c := newCluster(t, svc)
	p := newProm(t, func(string) reply { return vector("0") })
	if _, err := run(t, c, Prometheus{URL: p.URL}, options(p, &clock{}, &bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	if got, want := traffic(c.service().Spec.Traffic), "current="+cand+":100,latest=@latest:0"; got != want {
		t.Errorf("traffic %s, want %s", got, want)
	}
}

func TestRefusesToStart(t *testing.T) {
	tests := map[string]struct {
		svc  func() *servingv1.Service
		objs []runtime.Object
		opts func(*Options)
		want string
	}{
		"follows latest": {svc: func() *servingv1.Service {
			s := pinned()
			s.Spec.Traffic = []servingv1.TrafficTarget{{LatestRevision: ptr(true), Percent: ptr(int64(100))}}
			return s
		}, want: "no revision tagged \"current\"; pin one first"},
		"current tag on latest": {svc: func() *servingv1.Service {
			s := pinned()
			s.Spec.Traffic = []servingv1.TrafficTarget{{Tag: TagCurrent, LatestRevision: ptr(true), Percent: ptr(int64(100))}}
			return s
		}, want: "follows the latest revision"},
		"nothing new": {svc: func() *servingv1.Service {
			s := pinned()
			s.Status.LatestReadyRevisionName = cur
			return s
		}, want: "already current"},
		"candidate not ready":  {svc: pinned, objs: []runtime.Object{revision(cur, name, true), revision(cand, name, false)}, want: "not ready"},
		"candidate elsewhere":  {svc: pinned, objs: []runtime.Object{revision(cur, name, true), revision(cand, "other", true)}, want: "belongs to service \"other\""},
		"candidate missing":    {svc: pinned, objs: []runtime.Object{revision(cur, name, true)}, want: "not found"},
		"no such service":      {svc: pinned, opts: func(o *Options) { o.Service = "nope" }, want: "service day-trade/nope"},
		"bad steps":            {svc: pinned, opts: func(o *Options) { o.Steps = []int{10, 5, 100} }, want: "rise strictly"},
		"steps stop short":     {svc: pinned, opts: func(o *Options) { o.Steps = []int{10, 50} }, want: "end at 100"},
		"bad query":            {svc: pinned, opts: func(o *Options) { o.P95Query = "{{.Nope}}" }, want: "p95 query"},
		"error rate not share": {svc: pinned, opts: func(o *Options) { o.MaxErrorRate = 5 }, want: "share"},
		"third revision": {svc: func() *servingv1.Service {
			s := pinned()
			s.Spec.Traffic = []servingv1.TrafficTarget{target(TagCurrent, cur, 80), target("blue", "data-stocks-00000", 20)}
			return s
		}, want: "20% of data-stocks's traffic goes to data-stocks-00000"},
	}
	for tn, tc := range tests {
		t.Run(tn, func(t *testing.T) {
			c := newCluster(t, tc.svc(), tc.objs...)
			p := newProm(t, func(string) reply { return vector("0") })
			o := options(p, &clock{}, &bytes.Buffer{})
			if tc.opts != nil {
				tc.opts(&o)
			}
			_, err := run(t, c, Prometheus{URL: p.URL}, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			if len(c.writes) != 0 {
				t.Errorf("moved traffic before refusing: %v", c.candidateShares())
			}
		})
	}
}

func TestPin(t *testing.T) {
	svc := pinned()
	svc.Spec.Traffic = []servingv1.TrafficTarget{{LatestRevision: ptr(true), Percent: ptr(int64(100))}}
	svc.Status.LatestReadyRevisionName = cur
	c := newCluster(t, svc)
	var out bytes.Buffer
	rev, err := Pin(context.Background(), c.cs, ns, name, "", &out)
	if err != nil || rev != cur {
		t.Fatalf("Pin = %q, %v", rev, err)
	}
	if got, want := traffic(c.service().Spec.Traffic), "current="+cur+":100"; got != want {
		t.Errorf("traffic %s, want %s", got, want)
	}
	if _, err := Pin(context.Background(), c.cs, ns, name, "data-stocks-00009", nil); err == nil {
		t.Error("pinned a revision that does not exist")
	}
}

func TestPrometheusValues(t *testing.T) {
	tests := map[string]struct {
		body   string
		want   float64
		wantOK bool
		err    string
	}{
		"scalar":       {body: `{"status":"success","data":{"resultType":"scalar","result":[1,"0.5"]}}`, want: 0.5, wantOK: true},
		"vector":       {body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[1,"2.5"]}]}}`, want: 2.5, wantOK: true},
		"empty":        {body: `{"status":"success","data":{"resultType":"vector","result":[]}}`},
		"nan":          {body: `{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}`},
		"matrix":       {body: `{"status":"success","data":{"resultType":"matrix","result":[]}}`, err: "instant vector"},
		"not a number": {body: `{"status":"success","data":{"resultType":"scalar","result":[1,"abc"]}}`, err: "sample value"},
		"short sample": {body: `{"status":"success","data":{"resultType":"scalar","result":[1]}}`, err: "[time, value]"},
	}
	for tn, tc := range tests {
		t.Run(tn, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer t" {
					w.WriteHeader(http.StatusUnauthorized)
				}
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			v, ok, err := Prometheus{URL: srv.URL + "/", Header: http.Header{"Authorization": {"Bearer t"}}}.Query(context.Background(), "up")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || v != tc.want || ok != tc.wantOK {
				t.Fatalf("Query = %v, %v, %v; want %v, %v", v, ok, err, tc.want, tc.wantOK)
			}
		})
	}
	if _, _, err := (Prometheus{URL: "ftp://x"}).Query(context.Background(), "up"); err == nil {
		t.Error("accepted a non-HTTP URL")
	}
}

func TestDefaultQueriesRender(t *testing.T) {
	v := QueryVars{Namespace: "day-trade", Service: "s", Revision: `s-0000"1`, Window: "120s"}
	for name, q := range map[string]string{"error rate": DefaultErrorRateQuery, "p95": DefaultP95Query} {
		got, err := renderQuery(name, q, v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, `revision_name="s-0000\"1"`) || !strings.Contains(got, "[120s]") || strings.Contains(got, "{{") {
			t.Errorf("%s: %s", name, got)
		}
		// Balanced parentheses and braces: a typo in a default query would only show in a cluster.
		for _, pair := range [][2]string{{"(", ")"}, {"{", "}"}, {"[", "]"}} {
			if strings.Count(got, pair[0]) != strings.Count(got, pair[1]) {
				t.Errorf("%s: unbalanced %s%s in %s", name, pair[0], pair[1], got)
			}
		}
	}
	if !regexp.MustCompile(`response_code_class="5xx"`).MatchString(DefaultErrorRateQuery) {
		t.Error("error rate does not count 5xx")
	}
	if promDuration(1500*time.Millisecond) != "2s" || promDuration(0) != "1s" {
		t.Error("promDuration")
	}
}
