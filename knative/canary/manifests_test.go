package canary

import (
	"os"
	"path/filepath"
	"testing"

	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

// TestGeneratedServicesLeaveTrafficToTheCanary guards the contract between the generated
// manifests and this package. `kubectl apply` (and so `ko apply`) overwrites every field its
// YAML sets: a traffic block in the YAML would send a canary in progress back to the YAML's
// split on the next deploy, and a fixed revision name would make Knative reject every
// deploy that changes only the image. So the YAML sets neither: Knative names revisions
// <service>-00001, -00002, ..., and traffic is owned by the current/candidate tags.
func TestGeneratedServicesLeaveTrafficToTheCanary(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "base", "services", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated Services under knative/base/services (%v)", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var svc servingv1.Service
		if err := yaml.Unmarshal(b, &svc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if svc.Kind != "Service" || svc.Name == "" {
			t.Fatalf("%s: not a Knative Service", f)
		}
		if len(svc.Spec.Traffic) > 0 {
			t.Errorf("%s: sets spec.traffic; every apply would undo a canary", f)
		}
		if svc.Spec.Template.Name != "" {
			t.Errorf("%s: names its revision %q; an image-only deploy would be rejected", f, svc.Spec.Template.Name)
		}
	}
}
