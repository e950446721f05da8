package manifests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	securityv1 "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	"knative.dev/serving/pkg/networking"
	"sigs.k8s.io/yaml"
)

// servingDeploymentPrincipal reads the Istio principal a knative-serving Deployment runs as
// from knative.dev/serving's own release YAML in the module cache (the version go.mod pins),
// not from anything this package says: a principal copied from memory is what broke before.
func servingDeploymentPrincipal(t *testing.T, trustDomain, name string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "knative.dev/serving").Output()
	if err != nil {
		t.Fatalf("go list -m knative.dev/serving: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("knative.dev/serving is not in the module cache (go mod download knative.dev/serving)")
	}
	path := filepath.Join(dir, "config", "core", "deployments", name+".yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		var d appsv1.Deployment
		if err := yaml.Unmarshal(doc, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d.Kind != "Deployment" || d.Name != name {
			continue
		}
		sa, ns := d.Spec.Template.Spec.ServiceAccountName, d.Namespace
		if sa == "" || ns == "" {
			t.Fatalf("%s: Deployment %s has no serviceAccountName or namespace", path, name)
		}
		return trustDomain + "/ns/" + ns + "/sa/" + sa
	}
	t.Fatalf("%s: no Deployment %s", path, name)
	return ""
}

// allows reports whether an ALLOW policy lets requests from principal (an mTLS identity in
// namespace ns) reach port, under Istio's matching: one rule whose every field matches. With
// every, only a rule that allows any method and path on the port counts; without, a rule
// that allows some request there does.
func allows(spec *securityv1.AuthorizationPolicy, principal, ns string, port int, every bool) bool {
	p := strconv.Itoa(port)
	for _, r := range spec.GetRules() {
		if len(r.GetWhen()) > 0 {
			continue
		}
		from := len(r.GetFrom()) == 0
		for _, f := range r.GetFrom() {
			s := f.GetSource()
			if (len(s.GetPrincipals()) == 0 || slices.Contains(s.GetPrincipals(), principal)) &&
				(len(s.GetNamespaces()) == 0 || slices.Contains(s.GetNamespaces(), ns)) {
				from = true
			}
		}
		to := len(r.GetTo()) == 0
		for _, t := range r.GetTo() {
			o := t.GetOperation()
			unrestricted := len(o.GetPaths()) == 0 && len(o.GetMethods()) == 0 && len(o.GetHosts()) == 0
			if (unrestricted || !every) && len(o.GetNotPorts()) == 0 &&
				(len(o.GetPorts()) == 0 || slices.Contains(o.GetPorts(), p)) {
				to = true
			}
		}
		if from && to {
			return true
		}
	}
	return false
}

// TestKnativeServingMayReachEveryService checks the policies against the identities Knative
// Serving really runs as. The activator proxies (and probes) every request to a Service that
// is scaled to zero or short of burst capacity, on queue-proxy's serving port: if its
// principal is wrong, every scale-from-zero is a 403 under STRICT mTLS. The autoscaler
// scrapes queue-proxy's metrics port; nothing else of knative-serving may call at all.
func TestKnativeServingMayReachEveryService(t *testing.T) {
	opts := DefaultOptions()
	activator := servingDeploymentPrincipal(t, opts.TrustDomain, "activator")
	autoscaler := servingDeploymentPrincipal(t, opts.TrustDomain, "autoscaler")
	const system = "knative-serving"
	if !strings.Contains(activator, "/ns/"+system+"/") || !strings.Contains(autoscaler, "/ns/"+system+"/") {
		t.Fatalf("knative-serving moved: activator %s, autoscaler %s", activator, autoscaler)
	}
	// queue-proxy's ports, from Knative's own constants.
	serving := []int{networking.BackendHTTPPort, networking.BackendHTTP2Port}
	metrics := networking.AutoscalingQueueMetricsPort
	other := []int{networking.UserQueueMetricsPort, networking.QueueAdminPort, networking.BackendHTTPSPort, 8080}

	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			aps := objects(t, mustGenerate(t, fs()), "base/")["AuthorizationPolicy"]
			if len(aps) != len(fs()) {
				t.Fatalf("%d AuthorizationPolicies for %d functions", len(aps), len(fs()))
			}
			for _, o := range aps {
				var ap AuthorizationPolicy
				strict(t, o, &ap)
				var spec securityv1.AuthorizationPolicy
				istioSpec(t, o, &spec)
				for _, port := range serving {
					if !allows(&spec, activator, system, port, true) {
						t.Errorf("%s: the activator (%s) may not reach queue-proxy port %d: scale from zero would be denied", ap.Name, activator, port)
					}
				}
				if !allows(&spec, autoscaler, system, metrics, true) {
					t.Errorf("%s: the autoscaler (%s) may not scrape port %d", ap.Name, autoscaler, metrics)
				}
				for _, port := range append(slices.Clone(other), serving...) {
					if allows(&spec, autoscaler, system, port, false) {
						t.Errorf("%s: the autoscaler may reach port %d", ap.Name, port)
					}
				}
				for _, port := range append(slices.Clone(other), metrics) {
					if allows(&spec, activator, system, port, false) {
						t.Errorf("%s: the activator may reach port %d", ap.Name, port)
					}
				}
				// No other identity of knative-serving, and not the namespace as a whole.
				for _, r := range spec.GetRules() {
					for _, f := range r.GetFrom() {
						if slices.Contains(f.GetSource().GetNamespaces(), system) {
							t.Errorf("%s: allows all of %s", ap.Name, system)
						}
						for _, p := range f.GetSource().GetPrincipals() {
							if strings.Contains(p, "/ns/"+system+"/") && p != activator && p != autoscaler {
								t.Errorf("%s: allows %s, which is neither the activator (%s) nor the autoscaler (%s)", ap.Name, p, activator, autoscaler)
							}
						}
					}
				}
			}
		})
	}
}
