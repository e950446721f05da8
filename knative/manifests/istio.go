package manifests

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/serving/pkg/apis/serving"
	"knative.dev/serving/pkg/networking"

	"github.com/day-trade/platform/functions"
)

// These types mirror the fields we emit of Istio's security.istio.io/v1 and
// networking.istio.io/v1 CRDs. istio.io/client-go needs k8s.io v0.35, which Knative Serving
// v0.42 cannot build with; the specs' real types (istio.io/api protos) check them in tests.

// PeerAuthentication is security.istio.io/v1 PeerAuthentication.
type PeerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PeerAuthenticationSpec `json:"spec"`
}

// PeerAuthenticationSpec sets the mutual TLS mode of the workloads it selects.
type PeerAuthenticationSpec struct {
	MTLS *MTLS `json:"mtls,omitempty"`
}

// MTLS is the mTLS mode: STRICT accepts mTLS traffic only.
type MTLS struct {
	Mode string `json:"mode"`
}

// AuthorizationPolicy is security.istio.io/v1 AuthorizationPolicy.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              AuthorizationPolicySpec `json:"spec"`
}

// AuthorizationPolicySpec allows the requests that match one of Rules; once a workload has
// an ALLOW policy, Istio denies everything else.
type AuthorizationPolicySpec struct {
	Selector *WorkloadSelector `json:"selector,omitempty"`
	Action   string            `json:"action,omitempty"`
	Rules    []Rule            `json:"rules"`
}

// WorkloadSelector selects pods by label.
type WorkloadSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// Rule matches a request by its source and, optionally, its operation.
type Rule struct {
	From []RuleFrom `json:"from,omitempty"`
	To   []RuleTo   `json:"to,omitempty"`
}

// RuleFrom is one allowed source.
type RuleFrom struct {
	Source Source `json:"source"`
}

// Source is a peer identity from mTLS: a principal or a namespace.
type Source struct {
	Principals []string `json:"principals,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
}

// RuleTo is one allowed operation.
type RuleTo struct {
	Operation Operation `json:"operation"`
}

// Operation matches destination ports, methods and exact paths.
type Operation struct {
	Ports   []string `json:"ports,omitempty"`
	Methods []string `json:"methods,omitempty"`
	Paths   []string `json:"paths,omitempty"`
}

// VirtualService is networking.istio.io/v1 VirtualService.
type VirtualService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              VirtualServiceSpec `json:"spec"`
}

// VirtualServiceSpec routes HTTP requests to Hosts through Gateways ("mesh": sidecars).
type VirtualServiceSpec struct {
	Hosts    []string    `json:"hosts"`
	Gateways []string    `json:"gateways,omitempty"`
	HTTP     []HTTPRoute `json:"http"`
}

// HTTPRoute is one route; the first whose Match matches wins, no Match matches all.
type HTTPRoute struct {
	Name    string                 `json:"name,omitempty"`
	Match   []HTTPMatchRequest     `json:"match,omitempty"`
	Route   []HTTPRouteDestination `json:"route"`
	Retries *HTTPRetry             `json:"retries"`
}

// HTTPMatchRequest matches method and URI.
type HTTPMatchRequest struct {
	Method *StringMatch `json:"method,omitempty"`
	URI    *StringMatch `json:"uri,omitempty"`
}

// StringMatch is an exact or RE2 regex match.
type StringMatch struct {
	Exact string `json:"exact,omitempty"`
	Regex string `json:"regex,omitempty"`
}

// HTTPRouteDestination sends to one host.
type HTTPRouteDestination struct {
	Destination Destination `json:"destination"`
}

// Destination is a mesh host.
type Destination struct {
	Host string `json:"host"`
}

// HTTPRetry sets the route's retries; Attempts 0 disables them.
type HTTPRetry struct {
	Attempts int32 `json:"attempts"`
}

func (g *generator) peerAuthentication() *PeerAuthentication {
	p := &PeerAuthentication{
		TypeMeta:   metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "PeerAuthentication"},
		ObjectMeta: g.meta("default"),
		Spec:       PeerAuthenticationSpec{MTLS: &MTLS{Mode: "STRICT"}},
	}
	p.Labels = map[string]string{"app.kubernetes.io/part-of": partOf}
	return p
}

// principal is the Istio identity of the catalog entry name's service account.
func (g *generator) principal(name string) string {
	return g.opts.TrustDomain + "/ns/" + g.opts.Namespace + "/sa/" + name
}

var authzNote = []string{
	"One ALLOW policy per Knative Service: its callers by mTLS identity, nothing else.",
	"Knative's activator proxies every request to a Service scaled to zero (and probes it), so",
	"it may reach queue-proxy's serving ports and the caller's identity is lost on that path:",
	"functions still verify the gateway's signed identity token on every request. Knative's",
	"autoscaler may scrape queue-proxy's autoscaling metrics port, Prometheus its request",
	"metrics port (the canary reads them); neither may reach anything else.",
}

// queueServingPorts are queue-proxy's ports the activator proxies to (HTTP/1 and h2c): the
// activator never talks to a pod on any other.
var queueServingPorts = []string{strconv.Itoa(networking.BackendHTTPPort), strconv.Itoa(networking.BackendHTTP2Port)}

// authorizationPolicies allow, per Service: the gateway (to functions with routes, to the
// ensemble only when it has routes), the functions that list it in Calls, the Broker's
// dispatchers on its subscription paths, Knative's activator and autoscaler on queue-proxy's
// ports each needs, and Prometheus on the request metrics port when it has a principal.
func (g *generator) authorizationPolicies() []any {
	callers := map[string][]string{}
	for _, f := range g.fs {
		for _, c := range f.Calls {
			callers[c] = append(callers[c], g.principal(f.Name))
		}
	}
	var out []any
	for _, f := range g.fs {
		var principals []string
		switch {
		case f.Kind == functions.KindGateway:
			principals = append(principals, g.opts.IngressPrincipal)
		case len(f.Routes) > 0:
			principals = append(principals, g.principal(g.gateway))
		}
		principals = append(principals, callers[f.Name]...)
		slices.Sort(principals)
		principals = slices.Compact(principals)

		var rules []Rule
		if len(principals) > 0 {
			rules = append(rules, Rule{From: []RuleFrom{{Source: Source{Principals: principals}}}})
		}
		var paths []string
		for _, e := range f.Events {
			paths = append(paths, cmp.Or(e.Path, "/"))
		}
		if f.Name == DeadLetter {
			paths = append(paths, "/") // dead-letter sinks post to the Service's root
		}
		if len(paths) > 0 {
			slices.Sort(paths)
			rules = append(rules, Rule{
				From: []RuleFrom{{Source: Source{Namespaces: []string{g.opts.EventingNamespace}}}},
				To:   []RuleTo{{Operation: Operation{Methods: []string{"POST"}, Paths: slices.Compact(paths)}}},
			})
		}
		rules = append(rules, portRule(g.opts.ActivatorPrincipal, queueServingPorts...))
		rules = append(rules, portRule(g.opts.AutoscalerPrincipal, strconv.Itoa(networking.AutoscalingQueueMetricsPort)))
		if g.opts.MetricsScraperPrincipal != "" {
			rules = append(rules, portRule(g.opts.MetricsScraperPrincipal, strconv.Itoa(networking.UserQueueMetricsPort)))
		}

		p := &AuthorizationPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy"},
			ObjectMeta: g.meta(f.Name),
			Spec: AuthorizationPolicySpec{
				Selector: &WorkloadSelector{MatchLabels: map[string]string{serving.ServiceLabelKey: f.Name}},
				Action:   "ALLOW",
				Rules:    rules,
			},
		}
		p.Labels = g.labels(f)
		out = append(out, p)
	}
	return out
}

// portRule allows principal on ports only, any method and path.
func portRule(principal string, ports ...string) Rule {
	return Rule{
		From: []RuleFrom{{Source: Source{Principals: []string{principal}}}},
		To:   []RuleTo{{Operation: Operation{Ports: ports}}},
	}
}

var vsNote = []string{
	"No mesh retries for a function with a non-idempotent route: a retried POST can place an",
	"order twice. net-istio's own VirtualService for the same host also disables retries, so",
	"whichever of the two a sidecar picks, nothing is retried; the gateway retries idempotent",
	"routes itself (retry in one layer).",
}

// virtualServices disable retries on every route with Idempotent=false, catalog-driven.
func (g *generator) virtualServices() []any {
	var out []any
	for _, f := range g.fs {
		host := f.Host(g.opts.Namespace)
		dest := []HTTPRouteDestination{{Destination: Destination{Host: host}}}
		var http []HTTPRoute
		for _, r := range f.Routes {
			if r.Idempotent {
				continue
			}
			http = append(http, HTTPRoute{
				Name: strings.ToLower(r.Method) + "-" + strings.Trim(nonWord.ReplaceAllString(r.Path, "-"), "-"),
				Match: []HTTPMatchRequest{{
					Method: &StringMatch{Exact: r.Method},
					URI:    &StringMatch{Regex: RouteRegex(r.Path)},
				}},
				Route:   dest,
				Retries: &HTTPRetry{Attempts: 0},
			})
		}
		if len(http) == 0 {
			continue
		}
		// The catch-all keeps net-istio's setting for every other route of the function.
		http = append(http, HTTPRoute{Name: "default", Route: dest, Retries: &HTTPRetry{Attempts: 0}})
		vs := &VirtualService{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.istio.io/v1", Kind: "VirtualService"},
			ObjectMeta: g.meta(f.Name + "-no-retries"),
			Spec:       VirtualServiceSpec{Hosts: []string{host}, Gateways: []string{"mesh"}, HTTP: http},
		}
		vs.Labels = g.labels(f)
		out = append(out, vs)
	}
	return out
}

var (
	nonWord  = regexp.MustCompile(`[^a-z0-9]+`)
	chiParam = regexp.MustCompile(`\{[^}]*\}|\*`)
)

// RouteRegex turns a chi pattern into the RE2 regex Istio matches the whole path with:
// {name} is one segment, {name:re} is re, a trailing * is anything.
func RouteRegex(pattern string) string {
	var b strings.Builder
	last := 0
	for _, m := range chiParam.FindAllStringIndex(pattern, -1) {
		b.WriteString(regexp.QuoteMeta(pattern[last:m[0]]))
		tok := pattern[m[0]:m[1]]
		switch {
		case tok == "*":
			b.WriteString(".*")
		case strings.Contains(tok, ":"):
			b.WriteString("(" + tok[strings.Index(tok, ":")+1:len(tok)-1] + ")")
		default:
			b.WriteString("[^/]+")
		}
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(pattern[last:]))
	return b.String()
}
