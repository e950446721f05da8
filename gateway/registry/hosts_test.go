package registry_test

import (
	"errors"
	"testing"

	"github.com/day-trade/platform/gateway/registry"
)

func TestHostPolicy(t *testing.T) {
	t.Parallel()
	cluster, _ := registry.NewHostPolicy([]string{"*.svc.cluster.local", "10.20.*.*"})
	local, _ := registry.NewHostPolicy([]string{"127.0.0.1", "localhost", "[::1]"})
	any, _ := registry.NewHostPolicy([]string{"*"})
	cases := []struct {
		name   string
		policy *registry.HostPolicy
		url    string
		want   string // "" = refused
	}{
		{"cluster host", cluster, "http://data-stocks-00001.day-trade.svc.cluster.local:8080", "http://data-stocks-00001.day-trade.svc.cluster.local:8080"},
		{"trailing slash, upper case", cluster, "HTTP://A.Day-Trade.SVC.cluster.local/", "http://a.day-trade.svc.cluster.local"},
		{"https", cluster, "https://a.b.svc.cluster.local", "https://a.b.svc.cluster.local"},
		{"pod ip", cluster, "http://10.20.3.4:8080", "http://10.20.3.4:8080"},
		{"other name", cluster, "http://evil.example.com", ""},
		{"suffix trick", cluster, "http://a.svc.cluster.local.evil.com", ""},
		{"metadata", cluster, "http://169.254.169.254/", ""},
		{"metadata under *", any, "http://169.254.169.254/", ""},
		{"metadata mapped v6", any, "http://[::ffff:169.254.169.254]/", ""},
		{"link-local v6", any, "http://[fe80::1]/", ""},
		{"aws v6 metadata", any, "http://[fd00:ec2::254]/", ""},
		{"alibaba metadata", any, "http://100.100.100.200/", ""},
		{"gcp metadata name", any, "http://metadata.google.internal/", ""},
		{"loopback under *", any, "http://127.0.0.1:8080", ""},
		{"localhost under *", any, "http://localhost:8080", ""},
		{"unspecified", any, "http://0.0.0.0:80", ""},
		{"decimal ip", any, "http://2130706433/", ""},
		{"hex ip", any, "http://0x7f.0x1/", ""},
		{"plain name under *", any, "http://billing", "http://billing"},
		{"loopback literal", local, "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"localhost literal", local, "http://localhost:9000", "http://localhost:9000"},
		{"v6 loopback literal", local, "http://[::1]:9000", "http://[::1]:9000"},
		{"other loopback", local, "http://127.0.0.2:8080", ""},
		{"metadata in local", local, "http://169.254.169.254", ""},
		{"user info", any, "http://user:pw@billing", ""},
		{"at trick", cluster, "http://a.svc.cluster.local@169.254.169.254/", ""},
		{"path", any, "http://billing/admin", ""},
		{"query", any, "http://billing?x=1", ""},
		{"fragment", any, "http://billing#x", ""},
		{"scheme", any, "file:///etc/passwd", ""},
		{"gopher", any, "gopher://billing:70", ""},
		{"no host", any, "http://", ""},
		{"bad port", any, "http://billing:99999", ""},
		{"empty port", any, "http://billing:", ""},
		{"backslash", any, `http://billing\@169.254.169.254`, ""},
		{"crlf", any, "http://billing\r\nHost: x", ""},
		{"zone", local, "http://[fe80::1%25eth0]/", ""},
		{"not a url", any, "::", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.policy.Check(c.url)
			if c.want == "" {
				if err == nil || !errors.Is(err, registry.ErrHostNotAllowed) {
					t.Fatalf("Check(%q) = %q, %v; want refused", c.url, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("Check(%q) = %q, %v; want %q", c.url, got, err, c.want)
			}
		})
	}
}

func TestHostPolicyPatterns(t *testing.T) {
	t.Parallel()
	if _, err := registry.NewHostPolicy([]string{"[a-"}); err == nil {
		t.Fatal("a malformed pattern was accepted")
	}
	none, _ := registry.NewHostPolicy(nil)
	if _, err := none.Check("http://a.svc.cluster.local"); err == nil {
		t.Fatal("an empty policy allowed a host")
	}
}

func FuzzHostPolicy(f *testing.F) {
	for _, s := range []string{"http://169.254.169.254/", "http://a.svc.cluster.local:80", "http://[::1]/", "http://0x7f.1"} {
		f.Add(s)
	}
	p, _ := registry.NewHostPolicy([]string{"*"})
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := p.Check(raw)
		if err != nil {
			return
		}
		// Whatever passed must pass again unchanged, and never be a forbidden address.
		again, err := p.Check(got)
		if err != nil || again != got {
			t.Fatalf("Check(%q) = %q, then Check = %q, %v", raw, got, again, err)
		}
	})
}
