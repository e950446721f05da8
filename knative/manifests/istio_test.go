package manifests

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
)

// istioSpec decodes a document's spec strictly into Istio's own API type: protojson fails
// on any field the proto does not have, and on a wrong type or enum value.
func istioSpec(t *testing.T, o object, spec proto.Message) {
	t.Helper()
	var doc struct {
		Spec json.RawMessage `json:"spec"`
	}
	j, err := yaml.YAMLToJSON(o.raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(doc.Spec, spec); err != nil {
		t.Fatalf("%s (%s): spec is not a valid istio.io/api %T: %v", o.path, o.Kind, spec, err)
	}
}

func TestIstioSpecDecodeRejectsUnknownFields(t *testing.T) {
	if err := protojson.Unmarshal([]byte(`{"mtls":{"mode":"STRICT","strict":true}}`), &securityv1.PeerAuthentication{}); err == nil {
		t.Fatal("protojson accepted an unknown field; the Istio checks below would prove nothing")
	}
}

func TestPeerAuthenticationIsStrict(t *testing.T) {
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			objs := objects(t, mustGenerate(t, fs()), "base/")["PeerAuthentication"]
			if len(objs) != 1 || objs[0].APIVersion != "security.istio.io/v1" {
				t.Fatalf("want one security.istio.io/v1 PeerAuthentication, got %d", len(objs))
			}
			var pa PeerAuthentication
			strict(t, objs[0], &pa)
			var spec securityv1.PeerAuthentication
			istioSpec(t, objs[0], &spec)
			if spec.GetSelector() != nil || spec.GetMtls().GetMode().String() != "STRICT" || pa.Namespace != DefaultOptions().Namespace {
				t.Errorf("PeerAuthentication is not namespace-wide STRICT: %v", &spec)
			}
		})
	}
}

func TestAuthorizationPolicies(t *testing.T) {
	opts := DefaultOptions()
	principal := func(sa string) string { return opts.TrustDomain + "/ns/" + opts.Namespace + "/sa/" + sa }
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			cat := byName(fs())
			var gateway string
			callers := map[string][]string{}
			for _, f := range fs() {
				if f.Kind == functions.KindGateway {
					gateway = f.Name
				}
				for _, c := range f.Calls {
					callers[c] = append(callers[c], principal(f.Name))
				}
			}
			seen := map[string]bool{}
			for _, o := range objects(t, mustGenerate(t, fs()), "base/")["AuthorizationPolicy"] {
				var ap AuthorizationPolicy
				strict(t, o, &ap)
				var spec securityv1.AuthorizationPolicy
				istioSpec(t, o, &spec)

				f, ok := cat[ap.Name]
				if !ok {
					t.Fatalf("AuthorizationPolicy %s: no such function", ap.Name)
				}
				seen[f.Name] = true
				if spec.GetAction().String() != "ALLOW" || spec.GetSelector().GetMatchLabels()["serving.knative.dev/service"] != f.Name || len(spec.GetSelector().GetMatchLabels()) != 1 {
					t.Errorf("%s: policy does not ALLOW on exactly its own pods: %v", f.Name, &spec)
				}

				// Who may call, and where.
				want := slices.Clone(callers[f.Name])
				switch {
				case f.Kind == functions.KindGateway:
					want = append(want, opts.IngressPrincipal)
				case len(f.Routes) > 0:
					want = append(want, principal(gateway))
				}
				// Knative's activator and autoscaler, and Prometheus: each on its own ports only.
				wantPorts := map[string][]string{
					opts.ActivatorPrincipal:      {"8012", "8013"},
					opts.AutoscalerPrincipal:     {"9090"},
					opts.MetricsScraperPrincipal: {"9091"},
				}
				gotPorts := map[string][]string{}
				var got []string
				var eventPaths []string
				for _, r := range spec.GetRules() {
					if len(r.GetFrom()) != 1 {
						t.Fatalf("%s: rule %v", f.Name, r)
					}
					src := r.GetFrom()[0].GetSource()
					if len(src.GetNamespaces()) > 0 {
						// The Broker's dispatchers: POST to subscription paths only.
						if !slices.Equal(src.GetNamespaces(), []string{opts.EventingNamespace}) || len(src.GetPrincipals()) > 0 {
							t.Errorf("%s: source %v", f.Name, src)
						}
						for _, to := range r.GetTo() {
							if !slices.Equal(to.GetOperation().GetMethods(), []string{"POST"}) {
								t.Errorf("%s: eventing may %v", f.Name, to.GetOperation().GetMethods())
							}
							eventPaths = append(eventPaths, to.GetOperation().GetPaths()...)
						}
						if len(r.GetTo()) == 0 {
							t.Errorf("%s: eventing allowed on every path", f.Name)
						}
						continue
					}
					if len(r.GetTo()) > 1 || len(r.GetWhen()) > 0 || len(src.GetNotPrincipals()) > 0 {
						t.Errorf("%s: unexpected rule %v", f.Name, r)
					}
					if len(r.GetTo()) == 1 {
						op := r.GetTo()[0].GetOperation()
						if len(src.GetPrincipals()) != 1 || len(op.GetPorts()) == 0 || len(op.GetMethods())+len(op.GetPaths())+len(op.GetHosts())+len(op.GetNotPorts()) > 0 {
							t.Errorf("%s: a port rule must name one principal and its ports only: %v", f.Name, r)
							continue
						}
						gotPorts[src.GetPrincipals()[0]] = append(gotPorts[src.GetPrincipals()[0]], op.GetPorts()...)
						continue
					}
					got = append(got, src.GetPrincipals()...)
				}
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, slices.Compact(want)) {
					t.Errorf("%s (%s): principals %v, want %v", f.Name, f.Kind, got, want)
				}
				if len(gotPorts) != len(wantPorts) {
					t.Errorf("%s: port rules %v, want %v", f.Name, gotPorts, wantPorts)
				}
				for p, ports := range wantPorts {
					if !slices.Equal(gotPorts[p], ports) {
						t.Errorf("%s: %s may reach ports %v, want %v", f.Name, p, gotPorts[p], ports)
					}
				}
				var wantPaths []string
				for _, e := range f.Events {
					wantPaths = append(wantPaths, cmpOrSlash(e.Path))
				}
				if f.Name == DeadLetter {
					wantPaths = append(wantPaths, "/")
				}
				slices.Sort(wantPaths)
				if !slices.Equal(eventPaths, slices.Compact(wantPaths)) {
					t.Errorf("%s: eventing paths %v, want %v", f.Name, eventPaths, wantPaths)
				}
			}
			for n := range cat {
				if !seen[n] {
					t.Errorf("%s has no AuthorizationPolicy", n)
				}
			}
		})
	}
}

// TestEnsembleOnlyFromItsCallers pins the rule the issue states, on the fixture.
func TestEnsembleOnlyFromItsCallers(t *testing.T) {
	opts := DefaultOptions()
	for _, o := range objects(t, mustGenerate(t, fixtureCatalog()), "base/")["AuthorizationPolicy"] {
		var ap AuthorizationPolicy
		strict(t, o, &ap)
		if ap.Name != "ensemble" {
			continue
		}
		want := []Rule{
			{From: []RuleFrom{{Source: Source{Principals: []string{"cluster.local/ns/day-trade/sa/ml-batch-worker", "cluster.local/ns/day-trade/sa/ml-predict"}}}}},
			{From: []RuleFrom{{Source: Source{Principals: []string{opts.ActivatorPrincipal}}}}, To: []RuleTo{{Operation: Operation{Ports: []string{"8012", "8013"}}}}},
			{From: []RuleFrom{{Source: Source{Principals: []string{opts.AutoscalerPrincipal}}}}, To: []RuleTo{{Operation: Operation{Ports: []string{"9090"}}}}},
			{From: []RuleFrom{{Source: Source{Principals: []string{opts.MetricsScraperPrincipal}}}}, To: []RuleTo{{Operation: Operation{Ports: []string{"9091"}}}}},
		}
		got, _ := json.Marshal(ap.Spec.Rules)
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Fatalf("ensemble rules\n got %s\nwant %s", got, wantJSON)
		}
		return
	}
	t.Fatal("no ensemble policy")
}

// samplePath fills a chi pattern's parameters with values that match them.
func samplePath(pattern string) string {
	return regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(strings.ReplaceAll(pattern, "*", "a/b"), "0a1")
}

func TestRouteRegex(t *testing.T) {
	tests := map[string]struct {
		pattern string
		match   []string
		nomatch []string
	}{
		"literal":   {pattern: "/api/v1/execution/trade", match: []string{"/api/v1/execution/trade"}, nomatch: []string{"/api/v1/execution/trades", "/api/v1/execution/trade/x", "/api/v1/executionXtrade"}},
		"parameter": {pattern: "/api/v1/orders/{id}", match: []string{"/api/v1/orders/42"}, nomatch: []string{"/api/v1/orders/", "/api/v1/orders/4/2"}},
		"regexp":    {pattern: "/api/v1/orders/{id:[0-9]+}/fills", match: []string{"/api/v1/orders/42/fills"}, nomatch: []string{"/api/v1/orders/x/fills"}},
		"wildcard":  {pattern: "/api/v1/files/*", match: []string{"/api/v1/files/a/b.txt"}, nomatch: []string{"/api/v1/file"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// Istio (Envoy's RE2 safe_regex) matches the whole path.
			re := regexp.MustCompile("^(?:" + RouteRegex(tt.pattern) + ")$")
			for _, p := range tt.match {
				if !re.MatchString(p) {
					t.Errorf("%s does not match %s", re, p)
				}
			}
			for _, p := range tt.nomatch {
				if re.MatchString(p) {
					t.Errorf("%s matches %s", re, p)
				}
			}
		})
	}
}

func TestNoRetriesOnNonIdempotentRoutes(t *testing.T) {
	opts := DefaultOptions()
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			vss := map[string]*networkingv1.VirtualService{}
			for _, o := range objects(t, mustGenerate(t, fs()), "base/")["VirtualService"] {
				var vs VirtualService
				strict(t, o, &vs)
				spec := &networkingv1.VirtualService{}
				istioSpec(t, o, spec)
				for _, h := range spec.GetHttp() {
					if h.GetRetries() == nil || h.GetRetries().GetAttempts() != 0 {
						t.Errorf("%s: route %s retries %v", vs.Name, h.GetName(), h.GetRetries())
					}
				}
				if last := spec.GetHttp()[len(spec.GetHttp())-1]; len(last.GetMatch()) != 0 {
					t.Errorf("%s: no catch-all route: other routes would 404 if Istio picks this VirtualService", vs.Name)
				}
				for _, host := range spec.GetHosts() {
					vss[host] = spec
				}
			}
			nonIdempotent := 0
			for _, f := range fs() {
				for _, r := range f.Routes {
					if r.Idempotent {
						continue
					}
					nonIdempotent++
					spec, ok := vss[f.Host(opts.Namespace)]
					if !ok {
						t.Errorf("%s %s (%s): no VirtualService for its host", r.Method, r.Path, f.Name)
						continue
					}
					// The first route that matches the request must be this one, with no retries.
					path := samplePath(r.Path)
					var hit string
					for _, h := range spec.GetHttp() {
						if matches(h.GetMatch(), r.Method, path) {
							hit = h.GetName()
							break
						}
					}
					if hit == "" || hit == "default" {
						t.Errorf("%s %s (%s): first matching route %q, want its own", r.Method, path, f.Name, hit)
					}
				}
			}
			if name == "fixture" && nonIdempotent == 0 {
				t.Fatal("the fixture must have a non-idempotent route")
			}
		})
	}
}

func matches(ms []*networkingv1.HTTPMatchRequest, method, path string) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if m.GetMethod() != nil && m.GetMethod().GetExact() != method {
			continue
		}
		if re := m.GetUri().GetRegex(); re != "" && !regexp.MustCompile("^(?:"+re+")$").MatchString(path) {
			continue
		}
		return true
	}
	return false
}
