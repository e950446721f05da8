package manifests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/redistest"
)

// aclFile is the generated ACL template with test passwords in its placeholders.
func aclFile(t *testing.T, files map[string][]byte) (acl string, passwords map[string]string) {
	t.Helper()
	var s corev1.Secret
	if err := yaml.UnmarshalStrict(files["secrets/redis-acl.yaml"], &s); err != nil {
		t.Fatal(err)
	}
	passwords = map[string]string{}
	acl = os.Expand(s.StringData["users.acl"], func(name string) string {
		passwords[name] = "pw-" + strings.ToLower(name)
		return passwords[name]
	})
	return acl, passwords
}

// startRedisWithACL runs a real redis-server that loads acl as its aclfile.
func startRedisWithACL(t *testing.T, acl string) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not on PATH; install it (apt-get install -y redis-server) or run .ci/run")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "users.acl")
	if err := os.WriteFile(path, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	port := redistest.FreePort(t)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--aclfile", path,
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func client(t *testing.T, addr, user, password string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, Username: user, Password: password, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisACLConfinesEachFunctionToItsPatterns(t *testing.T) {
	files := mustGenerate(t, fixtureCatalog())
	acl, passwords := aclFile(t, files)
	addr := startRedisWithACL(t, acl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	admin := client(t, addr, RedisAdminUser, passwords[RedisPasswordVar(RedisAdminUser)])
	deadline := time.Now().Add(10 * time.Second)
	for admin.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with the generated ACL did not come up: %v", admin.Ping(ctx).Err())
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := client(t, addr, "", "").Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("unauthenticated PING: %v, want NOAUTH (default user off)", err)
	}

	fs := fixtureCatalog()
	for i, f := range fs {
		// The fixture's prefixes: each function's space, and the next one with another.
		p := f.KeyPrefix
		other := fs[(i+1)%len(fs)].KeyPrefix
		for j := i + 1; other == p; j++ {
			other = fs[j%len(fs)].KeyPrefix
		}
		t.Run(f.Name, func(t *testing.T) {
			c := client(t, addr, f.Name, passwords[RedisPasswordVar(f.Name)])
			allowed := map[string]func() error{
				"SET own":     func() error { return c.Set(ctx, p+":k", "v", time.Minute).Err() },
				"GET own":     func() error { return c.Get(ctx, p+":k").Err() },
				"XADD own":    func() error { return c.XAdd(ctx, &redis.XAddArgs{Stream: p + ":s", Values: []any{"a", "1"}}).Err() },
				"EVAL own":    func() error { return c.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{p + ":n"}).Err() },
				"PUBLISH own": func() error { return c.Publish(ctx, p+":ch", "x").Err() },
				"MULTI own": func() error {
					_, err := c.TxPipelined(ctx, func(tx redis.Pipeliner) error {
						tx.Incr(ctx, p+":n")
						tx.Expire(ctx, p+":n", time.Minute)
						return nil
					})
					return err
				},
			}
			denied := map[string]func() error{
				"SET other":     func() error { return c.Set(ctx, other+":k", "v", 0).Err() },
				"GET other":     func() error { return c.Get(ctx, other+":k").Err() },
				"EVAL other":    func() error { return c.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{other + ":n"}).Err() },
				"PUBLISH other": func() error { return c.Publish(ctx, other+":ch", "x").Err() },
				"KEYS":          func() error { return c.Keys(ctx, "*").Err() },
				"FLUSHALL":      func() error { return c.FlushAll(ctx).Err() },
				"CONFIG":        func() error { return c.ConfigGet(ctx, "*").Err() },
			}
			for name, op := range allowed {
				if err := op(); err != nil && err != redis.Nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			for name, op := range denied {
				if err := op(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
					t.Errorf("%s: %v, want NOPERM", name, err)
				}
			}
		})
	}
	if err := admin.FlushAll(ctx).Err(); err != nil {
		t.Errorf("admin FLUSHALL: %v", err)
	}
}

func TestRedisCredentialsMatchTheACL(t *testing.T) {
	files := mustGenerate(t, fixtureCatalog())
	var urls []string
	for _, o := range objects(t, files, "secrets/")["Secret"] {
		var s corev1.Secret
		strict(t, o, &s)
		if u, ok := s.StringData["url"]; ok {
			urls = append(urls, s.Name+" "+u)
		}
	}
	slices.Sort(urls)
	var want []string
	for _, f := range fixtureCatalog() {
		want = append(want, fmt.Sprintf("redis-%s redis://%s:${%s}@%s/0", f.Name, f.Name, RedisPasswordVar(f.Name), DefaultOptions().RedisAddr))
	}
	slices.Sort(want)
	if !slices.Equal(urls, want) {
		t.Errorf("REDIS_URL templates\n got %q\nwant %q", urls, want)
	}
}

func TestKoConfig(t *testing.T) {
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			files := mustGenerate(t, fs())
			var ko KoConfig
			if err := yaml.UnmarshalStrict(files[".ko.yaml"], &ko); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ko.DefaultBaseImage, "gcr.io/distroless/static") || !strings.HasSuffix(ko.DefaultBaseImage, ":nonroot") {
				t.Errorf("defaultBaseImage %q is not a distroless static nonroot image", ko.DefaultBaseImage)
			}
			builds := map[string]KoBuild{}
			for _, b := range ko.Builds {
				builds[b.ID] = b
			}
			for _, f := range fs() {
				b, ok := builds[f.Name]
				if !ok {
					t.Errorf("%s: no ko build", f.Name)
					continue
				}
				if functions.Module+"/"+strings.TrimPrefix(b.Main, "./") != f.ImportPath() || b.Dir != "." {
					t.Errorf("%s: builds %s in %s, want %s", f.Name, b.Main, b.Dir, f.ImportPath())
				}
				if !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") ||
					!slices.Contains(b.Ldflags, "-s") || !slices.Contains(b.Ldflags, "-w") {
					t.Errorf("%s: build %+v is not static, trimmed and stripped", f.Name, b)
				}
			}
		})
	}
}
