// Package canary rolls a Knative Service's new revision out by steps and rolls it back when
// its metrics breach a bound. The Service's traffic block names two revisions by tag:
// `current` (what serves today) and `candidate` (what is being tried). Run moves the
// candidate's share through Options.Steps (5 → 25 → 50 → 100 by default), waits for the
// Route to serve each split, watches the candidate for Options.Interval, then reads its
// error rate and p95 latency from Prometheus. Any breach, any missing or unreadable metric,
// a Route that does not settle, or an interrupt sends all traffic back to current
// (candidate 0%): the canary fails safe. A clean run promotes the candidate to current.
//
// Every traffic block it writes names revisions explicitly (never "latest"), so a deploy
// during a canary adds a revision without moving traffic, and its percentages always sum to
// 100. It changes only spec.traffic, through the Knative serving clientset.
package canary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"knative.dev/serving/pkg/apis/serving"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"knative.dev/serving/pkg/client/clientset/versioned"
	servingclient "knative.dev/serving/pkg/client/clientset/versioned/typed/serving/v1"
)

// Tags of the two revisions a canary moves traffic between.
const (
	TagCurrent   = "current"
	TagCandidate = "candidate"
)

// DefaultSteps are the candidate's traffic shares, in percent.
var DefaultSteps = []int{5, 25, 50, 100}

// Options configure a canary. Zero values take the defaults.
type Options struct {
	Namespace string
	Service   string
	// Candidate is the revision to roll out; "" takes the Service's latest ready revision.
	Candidate string
	Steps     []int         // default DefaultSteps; rising, each in 1..100, the last 100
	Interval  time.Duration // how long each step is watched before it is judged; default 2m
	// MaxErrorRate is the highest share (0..1) of the candidate's requests that may fail
	// with a 5xx; default 0.01.
	MaxErrorRate float64
	MaxP95       time.Duration // default 1s
	// ErrorRateQuery and P95Query are text/templates over QueryVars; the first must give a
	// ratio (0..1), the second seconds. Defaults: DefaultErrorRateQuery, DefaultP95Query.
	ErrorRateQuery string
	P95Query       string
	// AllowNoTraffic judges a step with no candidate requests as clean. By default it is a
	// breach: a canary nobody called proved nothing.
	AllowNoTraffic bool
	// SettleTimeout bounds the wait for the Route to serve a new split; default 2m.
	SettleTimeout time.Duration
	PollInterval  time.Duration // between looks at the Service's status; default 2s
	// Sleep waits d or until ctx ends and Now tells the time; nil uses the real clock.
	// Tests pass a fake clock.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
	Out   io.Writer // the log of what the canary does; nil discards
}

func (o *Options) defaults() error {
	if o.Namespace == "" || o.Service == "" {
		return errors.New("canary: namespace and service are required")
	}
	if len(o.Steps) == 0 {
		o.Steps = DefaultSteps
	}
	prev := 0
	for _, s := range o.Steps {
		if s <= prev || s > 100 {
			return fmt.Errorf("canary: steps %v must rise strictly within 1..100", o.Steps)
		}
		prev = s
	}
	if prev != 100 {
		return fmt.Errorf("canary: steps %v must end at 100", o.Steps)
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Minute
	}
	if o.MaxErrorRate == 0 {
		o.MaxErrorRate = 0.01
	}
	if o.MaxErrorRate < 0 || o.MaxErrorRate > 1 {
		return fmt.Errorf("canary: max error rate %v is not a share in 0..1", o.MaxErrorRate)
	}
	if o.MaxP95 <= 0 {
		o.MaxP95 = time.Second
	}
	if o.ErrorRateQuery == "" {
		o.ErrorRateQuery = DefaultErrorRateQuery
	}
	if o.P95Query == "" {
		o.P95Query = DefaultP95Query
	}
	for name, q := range map[string]string{"error rate": o.ErrorRateQuery, "p95": o.P95Query} {
		if _, err := renderQuery(name, q, QueryVars{}); err != nil {
			return fmt.Errorf("canary: %w", err)
		}
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 2 * time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Outcome is how a canary ended.
type Outcome string

const (
	Promoted   Outcome = "promoted"
	RolledBack Outcome = "rolled back"
)

// Step is one judged traffic share.
type Step struct {
	Percent   int
	ErrorRate float64       // NaN when there was no traffic
	P95       time.Duration // -1 when there was no traffic
	Breach    string        // why the step failed; "" when it passed
}

// Result is what a canary did.
type Result struct {
	Outcome   Outcome
	Current   string // the revision that served before
	Candidate string
	Steps     []Step
	Reason    string // why it rolled back
}

// Run rolls opts.Candidate out on the Service. It returns an error, and leaves traffic as
// it was, when the Service is not ready for a canary (no pinned current revision, no ready
// candidate, traffic to a third revision). Once it has moved traffic it ends with
// Promoted or RolledBack; an error then means the rollback itself failed.
func Run(ctx context.Context, cs versioned.Interface, m Metrics, opts Options) (Result, error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
	}
	c := &canary{cs: cs, m: m, o: opts}
	svc, err := c.get(ctx)
	if err != nil {
		return Result{}, err
	}
	cur, err := currentRevision(svc)
	if err != nil {
		return Result{}, err
	}
	cand := opts.Candidate
	if cand == "" {
		cand = svc.Status.LatestReadyRevisionName
	}
	res := Result{Current: cur, Candidate: cand}
	if err := c.checkCandidate(ctx, cur, cand); err != nil {
		return res, err
	}
	if err := checkOthers(svc); err != nil {
		return res, err
	}
	c.logf("canary %s/%s: current %s, candidate %s, steps %s, each watched %s (max error rate %s, max p95 %s)",
		opts.Namespace, opts.Service, cur, cand, percents(opts.Steps), opts.Interval, pct(opts.MaxErrorRate), opts.MaxP95)

	for i, p := range opts.Steps {
		c.logf("step %d/%d: candidate %d%%, current %d%%", i+1, len(opts.Steps), p, 100-p)
		if err := c.setTraffic(ctx, split(cur, 100-p, cand, p)); err != nil {
			return c.rollback(res, cur, cand, fmt.Sprintf("step %d%%: %v", p, err))
		}
		if err := c.settle(ctx, cand, p); err != nil {
			return c.rollback(res, cur, cand, fmt.Sprintf("step %d%%: %v", p, err))
		}
		c.logf("  serving; watching the candidate for %s", opts.Interval)
		if err := opts.Sleep(ctx, opts.Interval); err != nil {
			return c.rollback(res, cur, cand, fmt.Sprintf("step %d%%: interrupted (%v)", p, err))
		}
		st := c.judge(ctx, cand, p)
		res.Steps = append(res.Steps, st)
		if st.Breach != "" {
			return c.rollback(res, cur, cand, fmt.Sprintf("step %d%%: %s", p, st.Breach))
		}
	}
	if err := c.setTraffic(ctx, promoted(cand)); err != nil {
		return c.rollback(res, cur, cand, fmt.Sprintf("promotion: %v", err))
	}
	res.Outcome = Promoted
	c.logf("promoted %s: tagged %s, 100%% of traffic (%s no longer serves)", cand, TagCurrent, cur)
	return res, nil
}

// Pin tags rev (the latest ready revision when "") as current with all the traffic, the
// starting point of every canary. A Service fresh from `ko apply` sends its traffic to
// whatever revision is latest; pinned, a later deploy adds a revision at 0%.
func Pin(ctx context.Context, cs versioned.Interface, namespace, service, rev string, out io.Writer) (string, error) {
	if out == nil {
		out = io.Discard
	}
	c := &canary{cs: cs, o: Options{Namespace: namespace, Service: service, Out: out}}
	svc, err := c.get(ctx)
	if err != nil {
		return "", err
	}
	if rev == "" {
		rev = svc.Status.LatestReadyRevisionName
	}
	if rev == "" {
		return "", fmt.Errorf("canary: %s/%s has no ready revision to pin", namespace, service)
	}
	if err := c.checkRevision(ctx, rev); err != nil {
		return "", err
	}
	if err := c.setTraffic(ctx, []servingv1.TrafficTarget{target(TagCurrent, rev, 100)}); err != nil {
		return "", err
	}
	c.logf("pinned %s/%s: %s tagged %s with 100%% of traffic; new revisions now start at 0%%", namespace, service, rev, TagCurrent)
	return rev, nil
}

type canary struct {
	cs versioned.Interface
	m  Metrics
	o  Options
}

func (c *canary) logf(format string, args ...any) { fmt.Fprintf(c.o.Out, format+"\n", args...) }

func (c *canary) services() servingclient.ServiceInterface {
	return c.cs.ServingV1().Services(c.o.Namespace)
}

func (c *canary) get(ctx context.Context) (*servingv1.Service, error) {
	svc, err := c.services().Get(ctx, c.o.Service, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("canary: service %s/%s: %w", c.o.Namespace, c.o.Service, err)
	}
	return svc, nil
}

// currentRevision is the revision tagged current; a Service that still follows "latest"
// has none, and a canary on it would race every deploy.
func currentRevision(svc *servingv1.Service) (string, error) {
	for _, t := range svc.Spec.Traffic {
		if t.Tag == TagCurrent {
			if t.RevisionName == "" {
				return "", fmt.Errorf("canary: %s's %q tag follows the latest revision; pin it first: canary -pin %s", svc.Name, TagCurrent, svc.Name)
			}
			return t.RevisionName, nil
		}
	}
	return "", fmt.Errorf("canary: %s has no revision tagged %q; pin one first: canary -pin %s (or kn service update %s --tag <revision>=current --traffic current=100)",
		svc.Name, TagCurrent, svc.Name, svc.Name)
}

func (c *canary) checkCandidate(ctx context.Context, cur, cand string) error {
	switch {
	case cand == "":
		return fmt.Errorf("canary: %s has no ready revision to roll out", c.o.Service)
	case cand == cur:
		return fmt.Errorf("canary: nothing to roll out: %s is already current (deploy a new revision first)", cand)
	}
	return c.checkRevision(ctx, cand)
}

// checkRevision makes sure rev is a ready revision of this Service: traffic to anything
// else would fail or leak to another Service.
func (c *canary) checkRevision(ctx context.Context, rev string) error {
	r, err := c.cs.ServingV1().Revisions(c.o.Namespace).Get(ctx, rev, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("canary: revision %s: %w", rev, err)
	}
	if owner := r.Labels[serving.ServiceLabelKey]; owner != c.o.Service {
		return fmt.Errorf("canary: revision %s belongs to service %q, not %s", rev, owner, c.o.Service)
	}
	if !r.IsReady() {
		return fmt.Errorf("canary: revision %s is not ready", rev)
	}
	return nil
}

// checkOthers refuses a Service whose traffic also goes to revisions the canary does not
// manage: moving shares between two of three would change the third's meaning.
func checkOthers(svc *servingv1.Service) error {
	for _, t := range svc.Spec.Traffic {
		if t.Tag == TagCurrent || t.Tag == TagCandidate {
			continue
		}
		if t.Percent != nil && *t.Percent > 0 {
			who := t.RevisionName
			if who == "" {
				who = "the latest revision"
			}
			return fmt.Errorf("canary: %d%% of %s's traffic goes to %s (tag %q); send it to current first", *t.Percent, svc.Name, who, t.Tag)
		}
	}
	return nil
}

func target(tag, rev string, percent int) servingv1.TrafficTarget {
	return servingv1.TrafficTarget{Tag: tag, RevisionName: rev, LatestRevision: ptr(false), Percent: ptr(int64(percent))}
}

func ptr[T any](v T) *T { return &v }

func split(cur string, curPct int, cand string, candPct int) []servingv1.TrafficTarget {
	return []servingv1.TrafficTarget{target(TagCurrent, cur, curPct), target(TagCandidate, cand, candPct)}
}

func promoted(cand string) []servingv1.TrafficTarget {
	return []servingv1.TrafficTarget{target(TagCurrent, cand, 100)}
}

// Sum is the total percent of a traffic block.
func Sum(ts []servingv1.TrafficTarget) int64 {
	var n int64
	for _, t := range ts {
		if t.Percent != nil {
			n += *t.Percent
		}
	}
	return n
}

// setTraffic replaces the current and candidate targets with want, keeps other tags that
// carry no traffic (tag-only URLs), and writes it, retrying on a write conflict.
func (c *canary) setTraffic(ctx context.Context, want []servingv1.TrafficTarget) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		svc, err := c.get(ctx)
		if err != nil {
			return err
		}
		traffic := slices.Clone(want)
		for _, t := range svc.Spec.Traffic {
			if t.Tag != "" && t.Tag != TagCurrent && t.Tag != TagCandidate && (t.Percent == nil || *t.Percent == 0) {
				traffic = append(traffic, t)
			}
		}
		if n := Sum(traffic); n != 100 {
			// A bug, never a state to write: Knative would reject it anyway.
			return fmt.Errorf("canary: refusing to write traffic that sums to %d%%", n)
		}
		svc.Spec.Traffic = traffic
		_, err = c.services().Update(ctx, svc, metav1.UpdateOptions{FieldManager: "day-trade-canary"})
		if err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("canary: updating %s: %w", c.o.Service, err)
		}
		return err
	})
}

// settle waits until the Service has observed its new spec, is Ready, and its Route sends
// the candidate percent% of the traffic.
func (c *canary) settle(ctx context.Context, cand string, percent int) error {
	deadline := c.o.Now().Add(c.o.SettleTimeout)
	for {
		svc, err := c.get(ctx)
		if err == nil && svc.IsReady() && servedPercent(svc, cand) == percent {
			return nil
		}
		if err == nil && svc.IsFailed() {
			return fmt.Errorf("service failed: %s", svc.Status.GetCondition(servingv1.ServiceConditionReady).Message)
		}
		if !c.o.Now().Before(deadline) {
			return fmt.Errorf("the route did not serve the split within %s", c.o.SettleTimeout)
		}
		if err := c.o.Sleep(ctx, c.o.PollInterval); err != nil {
			return fmt.Errorf("interrupted while waiting for the route (%v)", err)
		}
	}
}

func servedPercent(svc *servingv1.Service, rev string) int {
	n := 0
	for _, t := range svc.Status.Traffic {
		if t.RevisionName == rev && t.Percent != nil {
			n += int(*t.Percent)
		}
	}
	return n
}

// judge reads the candidate's metrics for the step just watched.
func (c *canary) judge(ctx context.Context, cand string, percent int) Step {
	st := Step{Percent: percent, ErrorRate: math.NaN(), P95: -1}
	vars := QueryVars{Namespace: c.o.Namespace, Service: c.o.Service, Revision: cand, Window: promDuration(c.o.Interval)}
	read := func(name, text string) (float64, bool, error) {
		q, err := renderQuery(name, text, vars)
		if err != nil {
			return 0, false, err
		}
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return c.m.Query(qctx, q)
	}
	errRate, okRate, err := read("error rate", c.o.ErrorRateQuery)
	if err != nil {
		st.Breach = fmt.Sprintf("cannot read the error rate, failing safe: %v", err)
		c.logf("  %s", st.Breach)
		return st
	}
	p95s, okP95, err := read("p95", c.o.P95Query)
	if err != nil {
		st.Breach = fmt.Sprintf("cannot read the p95 latency, failing safe: %v", err)
		c.logf("  %s", st.Breach)
		return st
	}
	if okRate {
		st.ErrorRate = errRate
	}
	if okP95 {
		st.P95 = time.Duration(math.MaxInt64)
		if p95s < st.P95.Seconds() {
			st.P95 = time.Duration(p95s * float64(time.Second))
		}
	}
	var breaches []string
	switch {
	case !okRate || !okP95:
		if !c.o.AllowNoTraffic {
			breaches = append(breaches, fmt.Sprintf("no requests reached %s in %s, so nothing shows it works (-allow-no-traffic to accept that)", cand, c.o.Interval))
		}
	default:
		if errRate > c.o.MaxErrorRate {
			breaches = append(breaches, fmt.Sprintf("error rate %s > max %s", pct(errRate), pct(c.o.MaxErrorRate)))
		}
		if st.P95 > c.o.MaxP95 {
			breaches = append(breaches, fmt.Sprintf("p95 %s > max %s", fmtP95Dur(st.P95), c.o.MaxP95))
		}
	}
	st.Breach = strings.Join(breaches, "; ")
	verdict := "ok"
	if st.Breach != "" {
		verdict = "BREACH: " + st.Breach
	}
	c.logf("  candidate error rate %s (max %s), p95 %s (max %s): %s", fmtRate(st.ErrorRate), pct(c.o.MaxErrorRate), fmtP95Dur(st.P95), c.o.MaxP95, verdict)
	return st
}

// rollback sends all traffic back to current, keeping the candidate tagged at 0% so its
// URL still reaches it for debugging. It runs on a fresh context: an interrupted canary
// must still roll back.
func (c *canary) rollback(res Result, cur, cand, reason string) (Result, error) {
	res.Outcome, res.Reason = RolledBack, reason
	c.logf("rolling back: %s", reason)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.setTraffic(ctx, split(cur, 100, cand, 0)); err != nil {
		c.logf("ROLLBACK FAILED: %v; run: kn service update %s -n %s --traffic %s=100,%s=0", err, c.o.Service, c.o.Namespace, TagCurrent, TagCandidate)
		return res, fmt.Errorf("canary: rollback of %s failed: %w", c.o.Service, err)
	}
	c.logf("rolled back: %s %s 100%%, %s %s 0%%", TagCurrent, cur, TagCandidate, cand)
	return res, nil
}

func percents(steps []int) string {
	s := make([]string, len(steps))
	for i, p := range steps {
		s[i] = fmt.Sprintf("%d%%", p)
	}
	return strings.Join(s, "→")
}

func pct(v float64) string { return fmt.Sprintf("%.2f%%", v*100) }

func fmtRate(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return pct(v)
}

func fmtP95Dur(d time.Duration) string {
	switch {
	case d < 0:
		return "n/a"
	case d == math.MaxInt64:
		return "+Inf"
	}
	return d.Round(time.Millisecond).String()
}
