package registry

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// HostPolicy says which instance URLs the gateway may send traffic to: the registry must not
// become a way to make the gateway fetch from anywhere (SSRF). A URL passes when
//
//   - its scheme is http or https, it has no user info, query, fragment or path beyond "/",
//     and its port (if any) is 1..65535;
//   - its host matches one of the allowed glob patterns (path.Match syntax, e.g.
//     "*.svc.cluster.local", "10.20.*.*"), compared in lower case without the port;
//   - and, when the host is a loopback, link-local, unspecified, multicast or cloud metadata
//     address (169.254.169.254 and friends), or a name that always means one (localhost,
//     metadata.google.internal), a pattern names it literally, without wildcards: "*" never
//     admits 127.0.0.1 or 169.254.169.254, but "127.0.0.1" admits the former.
//
// Hosts that only look like numbers ("2130706433", "0x7f.1") are refused outright: resolvers
// disagree on what they mean. A name that passes may still resolve to a forbidden address; the
// gateway's dialer refuses those too (DialControl), so DNS cannot smuggle the metadata service
// in.
type HostPolicy struct {
	literal  map[string]bool
	patterns []string
}

// ErrHostNotAllowed is a URL the policy refuses.
var ErrHostNotAllowed = errors.New("registry: host not allowed")

// NewHostPolicy compiles allowed host patterns; an empty list allows nothing.
func NewHostPolicy(allowed []string) (*HostPolicy, error) {
	p := &HostPolicy{literal: map[string]bool{}}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		if inner := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"); len(inner) == len(a)-2 {
			if ip, err := netip.ParseAddr(inner); err == nil {
				a = ip.Unmap().String() // "[::1]" names the address ::1
			}
		} else if ip, err := netip.ParseAddr(a); err == nil {
			a = ip.Unmap().String()
		}
		if _, err := path.Match(a, ""); err != nil {
			return nil, fmt.Errorf("registry: allowed host pattern %q: %w", a, err)
		}
		if strings.ContainsAny(a, "*?[") {
			p.patterns = append(p.patterns, a)
		} else {
			p.literal[a] = true
		}
	}
	return p, nil
}

// Check returns the URL normalised to scheme://host[:port], or why it is refused.
func (p *HostPolicy) Check(raw string) (string, error) {
	refuse := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w: "+format, append([]any{ErrHostNotAllowed}, a...)...)
	}
	if strings.ContainsAny(raw, " \t\r\n\\") {
		return refuse("the url contains whitespace or backslashes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return refuse("not a url")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return refuse("scheme must be http or https")
	case u.User != nil:
		return refuse("user info is not allowed")
	case u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return refuse("only scheme://host[:port] is allowed, without path, query or fragment")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return refuse("the url has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return refuse("port must be 1..65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return refuse("empty port")
	}
	special := false
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return refuse("zoned addresses are not allowed")
		}
		special = forbiddenAddr(ip) || ip.Unmap().IsLoopback()
		host = ip.Unmap().String()
	} else {
		if !validHostname(host) {
			return refuse("host %q is neither an IP address nor a DNS name", host)
		}
		special = specialName(host)
	}
	allowed := p.literal[host]
	if !allowed && !special {
		for _, pat := range p.patterns {
			if ok, _ := path.Match(pat, host); ok {
				allowed = true
				break
			}
		}
	}
	if !allowed {
		if special {
			return refuse("host %s is a loopback, link-local or metadata address; only an allowed host naming it literally admits it", host)
		}
		return refuse("host %s matches no allowed host pattern", host)
	}
	out := url.URL{Scheme: scheme, Host: strings.ToLower(u.Host)}
	return out.String(), nil
}

// metadataAddrs are cloud metadata services outside the link-local range.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
}

// forbiddenAddr: addresses no upstream instance has, whatever the configuration says,
// except by a literal allow (checked by the caller): link-local (169.254.0.0/16 holds the
// metadata service of AWS, GCP, Azure and OpenStack), unspecified, multicast, broadcast,
// "this network" and known metadata addresses.
func forbiddenAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	if ip.Is4() {
		b := ip.As4()
		if b[0] == 0 || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return true
		}
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return true
		}
	}
	return false
}

func specialName(host string) bool {
	host = strings.TrimSuffix(host, ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost") ||
		host == "metadata" || host == "metadata.google.internal" || host == "instance-data" ||
		strings.HasSuffix(host, ".internal") && strings.HasPrefix(host, "metadata")
}

// validHostname: letters, digits, hyphens and dots, labels of 1..63, and a last label that
// is not all digits or hex-looking (which some resolvers read as an IPv4 address).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range []byte(l) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return false
	}
	return true
}

// DialControl is a net.Dialer Control function that refuses connections to link-local,
// unspecified, multicast and metadata addresses, whatever name led there. It runs after DNS
// resolution and before the connect, so no packet reaches such an address.
func DialControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil // not an IP (a unix socket path, say): nothing to judge
	}
	if forbiddenAddr(ip.WithZone("")) {
		return fmt.Errorf("%w: %s", ErrDialForbidden, address)
	}
	return nil
}

// ErrDialForbidden is the reason DialControl gives.
var ErrDialForbidden = errors.New("dial to a link-local, metadata or unspecified address refused")
