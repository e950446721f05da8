package manifests

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"knative.dev/serving/pkg/apis/autoscaling"
	"knative.dev/serving/pkg/apis/serving"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/day-trade/platform/functions"
)

const (
	// Probe paths served by shared/runtime for every function.
	ReadinessPath = "/health/readiness"
	LivenessPath  = "/health/liveness"

	// port is where shared/runtime listens ($PORT, Knative's default).
	port = 8080

	// nonRootID is the "nonroot" user of the distroless base image. Setting it explicitly
	// lets the kubelet prove runAsNonRoot whatever the image metadata says.
	nonRootID = 65532

	platformConfigMap = "platform"
	platformSecret    = "platform-secrets"
	partOf            = "day-trade"
)

func ptr[T any](v T) *T { return &v }

func (g *generator) labels(f functions.Function) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      f.Name,
		"app.kubernetes.io/component": string(f.Kind),
		"app.kubernetes.io/part-of":   partOf,
	}
}

func (g *generator) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: g.opts.Namespace}
}

// namespace turns on Istio's sidecar injection: STRICT mTLS needs a sidecar in every pod.
func (g *generator) namespace() *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: g.opts.Namespace, Labels: map[string]string{
			"istio-injection":           "enabled",
			"app.kubernetes.io/part-of": partOf,
		}},
	}
}

func (g *generator) serviceAccounts() []any {
	var out []any
	for _, f := range g.fs {
		sa := &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: g.meta(f.Name),
			// No function talks to the Kubernetes API.
			AutomountServiceAccountToken: ptr(false),
		}
		sa.Labels = g.labels(f)
		out = append(out, sa)
	}
	return out
}

// service is the Knative Service of one catalog entry.
func (g *generator) service(f functions.Function) (*servingv1.Service, error) {
	s := f.Scaling
	ann := map[string]string{
		autoscaling.MinScaleAnnotationKey: strconv.Itoa(s.MinScale),
		autoscaling.MaxScaleAnnotationKey: strconv.Itoa(s.MaxScale),
	}
	if s.Target > 0 {
		ann[autoscaling.TargetAnnotationKey] = strconv.Itoa(s.Target)
	}
	if s.IdleWindow > 0 {
		ann[autoscaling.ScaleToZeroPodRetentionPeriodKey] = goDuration(s.IdleWindow)
	}
	timeout := f.Timeout
	if f.Kind == functions.KindService {
		// Start with all the warm pods it will keep, not one that the autoscaler grows later.
		ann[autoscaling.InitialScaleAnnotationKey] = strconv.Itoa(s.MinScale)
		timeout = max(timeout, g.opts.ServiceMinTimeout)
	}
	res, err := g.resources(f.Kind)
	if err != nil {
		return nil, fmt.Errorf("manifests: %s: %w", f.Name, err)
	}

	svcLabels := g.labels(f)
	if f.Kind != functions.KindGateway {
		svcLabels["networking.knative.dev/visibility"] = serving.VisibilityClusterLocal
	}
	svc := &servingv1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.SchemeGroupVersion.String(), Kind: "Service"},
		ObjectMeta: g.meta(f.Name),
	}
	svc.Labels = svcLabels
	svc.Spec.Template = servingv1.RevisionTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: g.labels(f), Annotations: ann},
		Spec: servingv1.RevisionSpec{
			ContainerConcurrency: ptr(int64(s.Concurrency)),
			TimeoutSeconds:       ptr(int64((timeout + time.Second - 1) / time.Second)),
			PodSpec: corev1.PodSpec{
				ServiceAccountName: f.Name,
				// Service links put a dozen variables per Service of the namespace into
				// every process environment; nothing reads them.
				EnableServiceLinks: ptr(false),
				Containers: []corev1.Container{{
					Name:            f.Name,
					Image:           "ko://" + f.ImportPath(),
					Ports:           []corev1.ContainerPort{{Name: "http1", ContainerPort: port}},
					EnvFrom:         g.envFrom(f),
					Env:             g.secretEnv(f),
					Resources:       res,
					ReadinessProbe:  g.readiness(f),
					LivenessProbe:   &corev1.Probe{ProbeHandler: httpGet(LivenessPath), PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3},
					SecurityContext: restricted(),
				}},
			},
		},
	}
	return svc, nil
}

// readiness probes /health/readiness, which shared/runtime answers only once the process's
// checks pass (Redis reachable; for the ensemble, the model loaded).
func (g *generator) readiness(f functions.Function) *corev1.Probe {
	if f.Kind == functions.KindService {
		// Loading a model takes seconds to minutes: probe calmly until it is in memory.
		// A failing readiness probe never restarts the pod; it only keeps traffic away.
		return &corev1.Probe{ProbeHandler: httpGet(ReadinessPath), PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 3}
	}
	// periodSeconds 0 is Knative's aggressive probe (every 25ms until ready): the fastest
	// cold start for a function that scales from zero.
	return &corev1.Probe{ProbeHandler: httpGet(ReadinessPath)}
}

func httpGet(path string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port)}}
}

// restricted is the Pod Security Standards "restricted" profile for one container.
func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr(true),
		RunAsUser:                ptr(int64(nonRootID)),
		RunAsGroup:               ptr(int64(nonRootID)),
		ReadOnlyRootFilesystem:   ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func (g *generator) resources(k functions.Kind) (corev1.ResourceRequirements, error) {
	r := g.opts.Resources[k]
	q := map[string]resource.Quantity{}
	for name, v := range map[string]string{"cpu request": r.CPURequest, "memory request": r.MemoryRequest, "cpu limit": r.CPULimit, "memory limit": r.MemoryLimit} {
		x, err := resource.ParseQuantity(v)
		if err != nil {
			return corev1.ResourceRequirements{}, fmt.Errorf("%s %q: %w", name, v, err)
		}
		q[name] = x
	}
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: q["cpu request"], corev1.ResourceMemory: q["memory request"]},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: q["cpu limit"], corev1.ResourceMemory: q["memory limit"]},
	}, nil
}

// envFrom loads the platform's settings, then the function's own (which win on a clash).
func (g *generator) envFrom(f functions.Function) []corev1.EnvFromSource {
	out := []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: platformConfigMap}}}}
	if len(f.Env) > 0 {
		out = append(out, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: envConfigMap(f)}}})
	}
	return out
}

// secretEnv names every secret the function reads; values stay in Secrets.
func (g *generator) secretEnv(f functions.Function) []corev1.EnvVar {
	out := []corev1.EnvVar{{Name: "REDIS_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: redisSecret(f.Name)}, Key: "url",
	}}}}
	secrets := slices.Clone(f.Secrets)
	slices.Sort(secrets)
	for _, s := range slices.Compact(secrets) {
		out = append(out, corev1.EnvVar{Name: s, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: platformSecret}, Key: s,
		}}})
	}
	return out
}

func envConfigMap(f functions.Function) string { return f.Name + "-env" }

// goDuration writes d as Knative's annotations parse it (time.ParseDuration), in whole
// seconds when it is whole.
func goDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
