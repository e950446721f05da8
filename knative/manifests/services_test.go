package manifests

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	logtesting "knative.dev/pkg/logging/testing"
	"knative.dev/serving/pkg/apis/autoscaling"
	"knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	asconfig "knative.dev/serving/pkg/autoscaler/config"
	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
)

// knativeContext is the context Knative's webhook defaults and validates a create in, with a
// stock cluster's config-defaults, config-features and config-autoscaler (empty ConfigMaps
// load Knative's defaults), loaded through the same Store the webhook uses.
func knativeContext(t *testing.T) context.Context {
	t.Helper()
	s := config.NewStore(logtesting.TestLogger(t))
	for _, name := range []string{config.DefaultsConfigName, config.FeaturesConfigName, asconfig.ConfigName} {
		s.OnConfigChanged(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "knative-serving"}})
	}
	return apis.WithinCreate(s.ToContext(context.Background()))
}

// koResolve does what `ko resolve` does to an image before the API server sees it: a
// ko:// import path becomes a registry reference by digest.
func koResolve(image string) string {
	importPath, ok := strings.CutPrefix(image, "ko://")
	if !ok {
		return image
	}
	return fmt.Sprintf("registry.example/%s@sha256:%x", path.Base(importPath), sha256.Sum256([]byte(importPath)))
}

// services decodes every generated Knative Service strictly into Knative's own type.
func services(t *testing.T, files map[string][]byte) []*servingv1.Service {
	t.Helper()
	var out []*servingv1.Service
	for _, o := range objects(t, files, "base/")["Service"] {
		svc := &servingv1.Service{}
		strict(t, o, svc)
		out = append(out, svc)
	}
	return out
}

// validate runs Knative's SetDefaults and Validate on svc, as the webhook does on create,
// and fails on any error or warning.
func validate(t *testing.T, ctx context.Context, where string, svc *servingv1.Service) {
	t.Helper()
	svc = svc.DeepCopy()
	for i := range svc.Spec.Template.Spec.Containers {
		c := &svc.Spec.Template.Spec.Containers[i]
		c.Image = koResolve(c.Image)
	}
	svc.SetDefaults(ctx)
	fe := svc.Validate(ctx)
	if err := fe.Filter(apis.ErrorLevel); err != nil {
		t.Errorf("%s: %s: Validate errors: %v", where, svc.Name, err)
	}
	if warn := fe.Filter(apis.WarningLevel); warn != nil {
		t.Errorf("%s: %s: Validate warnings: %v", where, svc.Name, warn)
	}
}

func TestServicesPassKnativeValidation(t *testing.T) {
	ctx := knativeContext(t)
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			svcs := services(t, mustGenerate(t, fs()))
			if len(svcs) != len(fs()) {
				t.Fatalf("%d Services for %d catalog entries", len(svcs), len(fs()))
			}
			for _, svc := range svcs {
				validate(t, ctx, "base", svc)
			}
		})
	}
}

// TestValidationCatchesMistakes proves the validation above can fail: Knative rejects, or
// warns about, what a careless generator would emit.
func TestValidationCatchesMistakes(t *testing.T) {
	ctx := knativeContext(t)
	svc := services(t, mustGenerate(t, fixtureCatalog()))[0]
	tests := map[string]struct {
		edit   func(*servingv1.Service)
		accept bool
		level  apis.DiagnosticLevel
	}{
		"as generated":                 {edit: func(*servingv1.Service) {}, accept: true},
		"timeout over the cluster max": {edit: func(s *servingv1.Service) { s.Spec.Template.Spec.TimeoutSeconds = ptr(int64(3600)) }, level: apis.ErrorLevel},
		"max-scale below min-scale": {edit: func(s *servingv1.Service) {
			s.Spec.Template.Annotations[autoscaling.MinScaleAnnotationKey] = "3"
			s.Spec.Template.Annotations[autoscaling.MaxScaleAnnotationKey] = "2"
		}, level: apis.ErrorLevel},
		"no seccomp profile": {edit: func(s *servingv1.Service) { s.Spec.Template.Spec.Containers[0].SecurityContext.SeccompProfile = nil }, level: apis.WarningLevel},
		"image missing":      {edit: func(s *servingv1.Service) { s.Spec.Template.Spec.Containers[0].Image = "" }, level: apis.ErrorLevel},
		"privileged":         {edit: func(s *servingv1.Service) { s.Spec.Template.Spec.Containers[0].SecurityContext.Privileged = ptr(true) }, level: apis.ErrorLevel},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := svc.DeepCopy()
			s.Spec.Template.Spec.Containers[0].Image = koResolve(s.Spec.Template.Spec.Containers[0].Image)
			tt.edit(s)
			s.SetDefaults(ctx)
			fe := s.Validate(ctx)
			if tt.accept && fe != nil {
				t.Fatalf("Knative rejected the generated Service: %v", fe)
			}
			if !tt.accept && fe.Filter(tt.level) == nil {
				t.Fatalf("Knative did not report it at level %v: %v", tt.level, fe)
			}
		})
	}
}

func TestServicesAreRestricted(t *testing.T) {
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			cat := byName(fs())
			for _, svc := range services(t, mustGenerate(t, fs())) {
				f, ok := cat[svc.Name]
				if !ok {
					t.Fatalf("Service %s is not in the catalog", svc.Name)
				}
				ps := svc.Spec.Template.Spec
				if len(ps.Containers) != 1 {
					t.Fatalf("%s: %d containers", svc.Name, len(ps.Containers))
				}
				c := ps.Containers[0]
				sc := c.SecurityContext
				switch {
				case sc == nil:
					t.Fatalf("%s: no securityContext", svc.Name)
				case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot,
					sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem,
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation,
					sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0,
					sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault,
					sc.Privileged != nil:
					t.Errorf("%s: securityContext is not restricted: %+v", svc.Name, sc)
				}
				if ps.SecurityContext != nil || ps.HostNetwork || ps.HostPID || len(ps.Volumes) > 0 {
					t.Errorf("%s: pod-level settings widen the pod: %+v", svc.Name, ps)
				}
				if want := "ko://" + f.ImportPath(); c.Image != want {
					t.Errorf("%s: image %q, want %q", svc.Name, c.Image, want)
				}
				if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != ReadinessPath {
					t.Errorf("%s: readiness probe %+v, want GET %s", svc.Name, p, ReadinessPath)
				}
				if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != LivenessPath {
					t.Errorf("%s: liveness probe %+v, want GET %s", svc.Name, p, LivenessPath)
				}
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
					if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
						t.Errorf("%s: %s request %s limit %s", svc.Name, r, req.String(), lim.String())
					}
				}
				if ps.ServiceAccountName != f.Name {
					t.Errorf("%s: service account %q", svc.Name, ps.ServiceAccountName)
				}
			}
		})
	}
}

func TestServicesScaleAndVisibility(t *testing.T) {
	opts := DefaultOptions()
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			cat := byName(fs())
			for _, svc := range services(t, mustGenerate(t, fs())) {
				f := cat[svc.Name]
				ann := svc.Spec.Template.Annotations
				local := svc.Labels["networking.knative.dev/visibility"] == "cluster-local"
				if local == (f.Kind == functions.KindGateway) {
					t.Errorf("%s (%s): cluster-local=%v; only the gateway is public", svc.Name, f.Kind, local)
				}
				minScale, _ := strconv.Atoi(ann[autoscaling.MinScaleAnnotationKey])
				if ann[autoscaling.MaxScaleAnnotationKey] != strconv.Itoa(f.Scaling.MaxScale) || minScale != f.Scaling.MinScale {
					t.Errorf("%s: scale annotations %v, catalog %+v", svc.Name, ann, f.Scaling)
				}
				if cc := svc.Spec.Template.Spec.ContainerConcurrency; cc == nil || *cc != int64(f.Scaling.Concurrency) {
					t.Errorf("%s: containerConcurrency %v, catalog %d", svc.Name, cc, f.Scaling.Concurrency)
				}
				timeout := time.Duration(*svc.Spec.Template.Spec.TimeoutSeconds) * time.Second
				switch f.Kind {
				case functions.KindFunction:
					if ann[autoscaling.MinScaleAnnotationKey] != "0" || ann[autoscaling.ScaleToZeroPodRetentionPeriodKey] == "" {
						t.Errorf("%s: a function scales to zero after a retention period: %v", svc.Name, ann)
					}
					if timeout < f.Timeout || timeout >= f.Timeout+time.Second {
						t.Errorf("%s: timeoutSeconds %s, catalog %s", svc.Name, timeout, f.Timeout)
					}
				case functions.KindService:
					if minScale < 1 || ann[autoscaling.InitialScaleAnnotationKey] != ann[autoscaling.MinScaleAnnotationKey] {
						t.Errorf("%s: an always-warm service needs min-scale >= 1 and initial-scale = min-scale: %v", svc.Name, ann)
					}
					if timeout < opts.ServiceMinTimeout || timeout < f.Timeout {
						t.Errorf("%s: timeoutSeconds %s is not generous", svc.Name, timeout)
					}
					if p := svc.Spec.Template.Spec.Containers[0].ReadinessProbe; p.PeriodSeconds == 0 || p.FailureThreshold == 0 {
						t.Errorf("%s: readiness must keep failing calmly until the model is loaded: %+v", svc.Name, p)
					}
				case functions.KindGateway:
					if minScale < 1 {
						t.Errorf("%s: the gateway needs min-scale >= 1", svc.Name)
					}
				}
			}
		})
	}
}

var (
	placeholderRE = regexp.MustCompile(`\$\{[A-Z][A-Z0-9_]*\}`)
	// passwordRE finds the password of an ACL user (">pw") and of a redis:// URL.
	// userinfoRE finds a password in a URL (scheme://user:password@host).
	userinfoRE = regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`)
	passwordRE = regexp.MustCompile(`(?m)^user \S+ on >(\S+)|redis://[^:/@]+:([^@]*)@`)
)

func TestNoSecretValuesInline(t *testing.T) {
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			files := mustGenerate(t, fs())
			cat := byName(fs())
			for _, svc := range services(t, files) {
				c := svc.Spec.Template.Spec.Containers[0]
				seen := map[string]bool{}
				for _, e := range c.Env {
					if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s: env %s is not from a Secret", svc.Name, e.Name)
					}
					seen[e.Name] = true
				}
				for _, s := range append([]string{"REDIS_URL"}, cat[svc.Name].Secrets...) {
					if !seen[s] {
						t.Errorf("%s: secret %s is not in its env", svc.Name, s)
					}
				}
				for _, ef := range c.EnvFrom {
					if ef.SecretRef != nil {
						t.Errorf("%s: envFrom a whole Secret hides which secrets it reads", svc.Name)
					}
				}
			}
			for _, o := range objects(t, files, "base/")["ConfigMap"] {
				var cm corev1.ConfigMap
				strict(t, o, &cm)
				for k, v := range cm.Data {
					if secretish.MatchString(k) || userinfoRE.MatchString(v) {
						t.Errorf("ConfigMap %s: %s=%q looks like a secret", cm.Name, k, v)
					}
				}
			}
			if objs := objects(t, files, "base/")["Secret"]; len(objs) > 0 {
				t.Errorf("base/ holds %d Secrets; Secrets are templates under secrets/ only", len(objs))
			}
			for _, o := range objects(t, files, "secrets/")["Secret"] {
				var s corev1.Secret
				strict(t, o, &s)
				if len(s.Data) > 0 {
					t.Errorf("Secret %s: template has binary data", s.Name)
				}
				for k, v := range s.StringData {
					if !placeholderRE.MatchString(v) {
						t.Errorf("Secret %s: %s has no ${PLACEHOLDER}", s.Name, k)
					}
					// Every password position must be a placeholder, never a literal.
					for _, pw := range passwordRE.FindAllStringSubmatch(v, -1) {
						if lit := pw[1] + pw[2]; !placeholderRE.MatchString(lit) || placeholderRE.FindString(lit) != lit {
							t.Errorf("Secret %s: %s holds a literal password %q", s.Name, k, lit)
						}
					}
				}
			}
		})
	}
}

// overlayServices applies an overlay's patches to the base Services, as kustomize would.
func overlayServices(t *testing.T, files map[string][]byte, overlay string) []*servingv1.Service {
	t.Helper()
	var k Kustomization
	if err := yaml.UnmarshalStrict(files["overlays/"+overlay+"/kustomization.yaml"], &k); err != nil {
		t.Fatal(err)
	}
	var out []*servingv1.Service
	for _, o := range objects(t, files, "base/")["Service"] {
		doc, err := yaml.YAMLToJSON(o.raw)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(o.raw, &meta); err != nil {
			t.Fatal(err)
		}
		for _, p := range k.Patches {
			if p.Target.Kind != "Service" || p.Target.Name != meta.Metadata.Name {
				continue
			}
			jp, err := jsonpatch.DecodePatch([]byte(p.Patch))
			if err != nil {
				t.Fatalf("%s: patch %s: %v", overlay, p.Target.Name, err)
			}
			if doc, err = jp.Apply(doc); err != nil {
				t.Fatalf("%s: patch %s does not apply to base: %v", overlay, p.Target.Name, err)
			}
		}
		svc := &servingv1.Service{}
		if err := yaml.UnmarshalStrict(doc, svc); err != nil {
			t.Fatal(err)
		}
		out = append(out, svc)
	}
	return out
}

func TestOverlaysPassKnativeValidation(t *testing.T) {
	ctx := knativeContext(t)
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			files := mustGenerate(t, fs())
			cat := byName(fs())
			for _, o := range DefaultOptions().Overlays {
				for _, svc := range overlayServices(t, files, o.Name) {
					validate(t, ctx, o.Name, svc)
					ann := svc.Spec.Template.Annotations
					minScale, _ := strconv.Atoi(ann[autoscaling.MinScaleAnnotationKey])
					maxScale, _ := strconv.Atoi(ann[autoscaling.MaxScaleAnnotationKey])
					if o.MaxScale > 0 && maxScale > max(o.MaxScale, minScale) {
						t.Errorf("%s: %s max-scale %d over the overlay's cap %d", o.Name, svc.Name, maxScale, o.MaxScale)
					}
					if f := cat[svc.Name]; o.MinWarm > 0 && f.Kind != functions.KindFunction && minScale < min(o.MinWarm, maxScale) {
						t.Errorf("%s: %s min-scale %d under the overlay's %d", o.Name, svc.Name, minScale, o.MinWarm)
					}
					if f := cat[svc.Name]; f.Kind == functions.KindService && ann[autoscaling.InitialScaleAnnotationKey] != ann[autoscaling.MinScaleAnnotationKey] {
						t.Errorf("%s: %s initial-scale %s != min-scale %d", o.Name, svc.Name, ann[autoscaling.InitialScaleAnnotationKey], minScale)
					}
				}
			}
		})
	}
}

// TestKustomizeBuilds runs the real kustomize (built into kubectl) over base and overlays.
func TestKustomizeBuilds(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH: kustomize build not checked")
	}
	ctx := knativeContext(t)
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := Write(dir, mustGenerate(t, fs())); err != nil {
				t.Fatal(err)
			}
			for _, target := range []string{"base", "overlays/dev", "overlays/prod"} {
				out, err := exec.Command(kubectl, "kustomize", filepath.Join(dir, target)).Output()
				if err != nil {
					t.Fatalf("kubectl kustomize %s: %v", target, err)
				}
				built := objects(t, map[string][]byte{"built/all.yaml": out}, "built/")
				if got, want := len(built["Service"]), len(fs()); got != want {
					t.Errorf("%s: %d Services, want %d", target, got, want)
				}
				for _, o := range built["Service"] {
					svc := &servingv1.Service{}
					strict(t, o, svc)
					validate(t, ctx, target, svc)
				}
			}
		})
	}
}
