package manifests

import (
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/day-trade/platform/functions"
)

// configMaps are the platform's shared settings and, per function, its catalog Env.
func (g *generator) configMaps() []any {
	data := map[string]string{
		// The runtime's namespace default; Knative would need a feature flag for a fieldRef.
		"POD_NAMESPACE": g.opts.Namespace,
		"LOG_LEVEL":     g.opts.LogLevel,
		// The multi-tenant Broker's ingress: publishers without a SinkBinding post here.
		"BROKER_URL": fmt.Sprintf("http://broker-ingress.%s.svc.cluster.local/%s/%s", g.opts.EventingNamespace, g.opts.Namespace, g.opts.Broker),
	}
	if g.opts.OTLPEndpoint != "" {
		data["OTEL_EXPORTER_OTLP_ENDPOINT"] = g.opts.OTLPEndpoint
	}
	out := []any{g.configMap(platformConfigMap, data)}
	for _, f := range g.fs {
		if len(f.Env) > 0 {
			cm := g.configMap(envConfigMap(f), maps.Clone(f.Env))
			cm.Labels = g.labels(f)
			out = append(out, cm)
		}
	}
	return out
}

func (g *generator) configMap(name string, data map[string]string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: g.meta(name),
		Data:       data,
	}
	cm.Labels = map[string]string{"app.kubernetes.io/part-of": partOf}
	return cm
}

// redisSecret is the Secret holding name's REDIS_URL: every catalog entry has its own ACL
// user, so its own credentials.
func redisSecret(name string) string { return "redis-" + name }

// Placeholder is how a Secret template names a value that envsubst fills in at deploy time.
func Placeholder(name string) string { return "${" + name + "}" }

// RedisPasswordVar is the deploy-time variable holding the password of the ACL user user.
func RedisPasswordVar(user string) string {
	return "REDIS_PASSWORD_" + strings.ToUpper(strings.ReplaceAll(user, "-", "_"))
}

// RedisAdminUser is the ACL user for operators; no function uses it.
const RedisAdminUser = "admin"

// ACLRule is the Redis ACL rule of f's user (named after f), without the user and password.
func ACLRule(f functions.Function) string { return f.RedisACLRule() }

// ACL is the Redis ACL file: the default user off, an operator user, and one user per
// catalog entry (function, service and gateway) allowed exactly the key patterns it uses.
func (g *generator) ACL() string {
	var b strings.Builder
	b.WriteString("user default off\n")
	fmt.Fprintf(&b, "user %s on >%s ~* &* +@all\n", RedisAdminUser, Placeholder(RedisPasswordVar(RedisAdminUser)))
	for _, f := range g.fs {
		fmt.Fprintf(&b, "user %s on >%s %s\n", f.Name, Placeholder(RedisPasswordVar(f.Name)), ACLRule(f))
	}
	return b.String()
}

// secretTemplates are Secrets with ${VAR} placeholders, never values. They are not in any
// kustomization: `kubectl apply -k` must not create a Secret holding a placeholder.
func (g *generator) secretTemplates() map[string]file {
	use := "Template: fill with `envsubst < THIS_FILE | kubectl apply -f -`; never commit the result."
	out := map[string]file{}
	acl := g.secret("redis-acl", map[string]string{"users.acl": g.ACL()})
	out["redis-acl.yaml"] = file{note: []string{use, "Mount as the Redis server's aclfile (users.acl)."}, objs: []any{acl}}

	var creds []any
	for _, f := range g.fs {
		url := fmt.Sprintf("redis://%s:%s@%s/0", f.Name, Placeholder(RedisPasswordVar(f.Name)), g.opts.RedisAddr)
		creds = append(creds, g.secret(redisSecret(f.Name), map[string]string{"url": url}))
	}
	out["redis-credentials.yaml"] = file{note: []string{use, "Passwords go into URLs: use URL-safe ones (openssl rand -hex 32)."}, objs: creds}

	data := map[string]string{}
	for _, f := range g.fs {
		for _, s := range f.Secrets {
			data[s] = Placeholder(s)
		}
	}
	if len(data) > 0 {
		out["platform-secrets.yaml"] = file{note: []string{use}, objs: []any{g.secret(platformSecret, data)}}
	}
	return out
}

func (g *generator) secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: g.meta(name),
		Type:       corev1.SecretTypeOpaque,
		StringData: data,
	}
	s.Labels = map[string]string{"app.kubernetes.io/part-of": partOf}
	return s
}
