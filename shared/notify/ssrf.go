package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrBlockedAddress is wrapped by every refusal of the SSRF guard.
var ErrBlockedAddress = errors.New("address not allowed for outbound notifications")

// blockedPrefixes are ranges no notification may reach, beyond what netip's predicates
// (loopback, private, link-local, multicast, unspecified) already cover.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, also used for cluster and VPC internals
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: would reach IPv4 internals
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
}

// blockedSuffixes are host names that name cluster or host internals; the IP check would
// refuse most of them anyway, but a name is refused before any DNS query is made.
var blockedSuffixes = []string{"localhost", ".local", ".internal", ".svc", ".cluster.local", ".localdomain"}

// Guard decides which addresses outbound notifications may reach.
type Guard struct {
	// Allow opens ranges that are otherwise refused, for local development (e.g. 127.0.0.0/8
	// so that a webhook receiver on the laptop works). Empty in production.
	Allow []netip.Prefix
	// Resolver resolves names for CheckURL; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// ParseAllow parses a comma-separated CIDR list (as an env var holds it).
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("notify: allow-list entry %q: %w", part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CheckIP refuses an address that is loopback, private, link-local (the 169.254.169.254
// metadata endpoint among them), multicast, unspecified or otherwise reserved, unless the
// allow-list opens it.
func (g Guard) CheckIP(ip netip.Addr) error {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	for _, p := range g.Allow {
		if p.Contains(ip) {
			return nil
		}
	}
	switch {
	case !ip.IsValid():
		return fmt.Errorf("%w: invalid address", ErrBlockedAddress)
	case ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsInterfaceLocalMulticast(), ip.IsMulticast(), ip.IsUnspecified():
		return fmt.Errorf("%w: %s is loopback, private, link-local or multicast", ErrBlockedAddress, ip)
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is in reserved range %s", ErrBlockedAddress, ip, p)
		}
	}
	return nil
}

// CheckURL validates a target URL before it is accepted: http or https, a host, no user
// info, no internal host name, and every address the host resolves to allowed. Passing it
// does not make a later connection safe (DNS may change: rebinding); the Client's dialer
// checks again at connect time.
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > 2048 {
		return fmt.Errorf("URL longer than 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https")
	}
	if u.User != nil {
		return fmt.Errorf("user info is not allowed in the URL")
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return fmt.Errorf("no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.CheckIP(ip)
	}
	for _, suf := range blockedSuffixes {
		if host == strings.TrimPrefix(suf, ".") || strings.HasSuffix(host, suf) {
			if !g.allowsNames() {
				return fmt.Errorf("%w: host %s is internal", ErrBlockedAddress, host)
			}
		}
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("host %s does not resolve", host)
	}
	for _, ip := range ips {
		if err := g.CheckIP(ip); err != nil {
			return fmt.Errorf("host %s resolves to a refused address: %w", host, err)
		}
	}
	return nil
}

// allowsNames reports whether the allow-list opens loopback, so that "localhost" may be used
// in local development.
func (g Guard) allowsNames() bool {
	for _, p := range g.Allow {
		if p.Contains(netip.MustParseAddr("127.0.0.1")) || p.Contains(netip.IPv6Loopback()) {
			return true
		}
	}
	return false
}

// control runs on every connection the guarded client makes, after DNS and before connect,
// with the literal IP it is about to dial.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address %q", ErrBlockedAddress, address)
	}
	return g.CheckIP(ap.Addr())
}

// Client returns an HTTP client whose every connection is checked by the guard at connect
// time, that ignores proxy settings (a proxy would make the check moot), and that does not
// follow redirects (a 3xx is answered as it is, so a redirect cannot lead inside).
func (g Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
