package gateway

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/auth"
)

// token68 is RFC 9110 §11.2's token68, the oracle for credential.
var token68 = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

// FuzzCredential feeds credential arbitrary X-API-Key and Authorization headers (each sent
// zero, one or two times): it never panics, returns a credential only when the header it came
// from is well formed, returns exactly what the client sent, and calls a key a key only when
// it looks like one.
//
//	go test -run '^$' -fuzz FuzzCredential -fuzztime 30s ./gateway
func FuzzCredential(f *testing.F) {
	key := "dt_live_0123456789abcdef_" + strings.Repeat("ab", 32)
	jwt := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"
	for _, seed := range []struct {
		apiKey, authz string
		nKey, nAuth   uint8
	}{
		{key, "", 1, 0},
		{"", "Bearer " + key, 0, 1},
		{"", "bearer " + jwt, 0, 1},
		{"", "BEARER   " + jwt + "  ", 0, 1},
		{"", "Bearer", 0, 1},
		{"", "Bearer ", 0, 1},
		{"", "Bearer a b", 0, 1},
		{"", "Basic dXNlcjpwYXNz", 0, 1},
		{"", "Bearer abc==", 0, 1},
		{"", "Bearer ==abc", 0, 1},
		{key, "Bearer " + jwt, 2, 1},
		{"", "Bearer " + key, 0, 2},
		{"", "Bearer\t" + key, 0, 1},
		{key + "\x00", "", 1, 0},
		{"", "Bearer dt_é", 0, 1},
	} {
		f.Add(seed.apiKey, seed.authz, seed.nKey, seed.nAuth)
	}
	f.Fuzz(func(t *testing.T, apiKey, authz string, nKey, nAuth uint8) {
		h := http.Header{}
		for range nKey % 3 {
			h["X-Api-Key"] = append(h["X-Api-Key"], apiKey)
		}
		for range nAuth % 3 {
			h["Authorization"] = append(h["Authorization"], authz)
		}
		cred, isKey, err := credential(h)
		if err != nil {
			if cred != "" || isKey {
				t.Fatalf("credential %q (key %v) returned with error %v", cred, isKey, err)
			}
			if !errors.Is(err, errNoCredential) && !errors.Is(err, errBadCredential) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(h["X-Api-Key"])+len(h["Authorization"]) == 0 && !errors.Is(err, errNoCredential) {
				t.Fatalf("no headers, but %v", err)
			}
			return
		}
		if !token68.MatchString(cred) {
			t.Fatalf("credential %q is not a token68", cred)
		}
		switch {
		case len(h["X-Api-Key"]) == 1 && apiKey != "":
			if cred != apiKey || !isKey {
				t.Fatalf("X-API-Key %q gave %q (key %v)", apiKey, cred, isKey)
			}
		case len(h["Authorization"]) == 1:
			scheme, rest, ok := strings.Cut(strings.TrimLeft(authz, " \t"), " ")
			if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(rest) != cred {
				t.Fatalf("Authorization %q gave %q", authz, cred)
			}
			if isKey != auth.LooksLikeAPIKey(cred) {
				t.Fatalf("bearer %q: isKey %v", cred, isKey)
			}
		default:
			t.Fatalf("credential %q from headers %q", cred, h)
		}
	})
}

// FuzzCacheControl feeds the response cache's Cache-Control parsing arbitrary values: it never
// panics, never keeps an answer longer than the route allows or for a negative time, never
// keeps one marked no-store, private or no-cache, and keeps one with a max-age or s-maxage
// only when that value is valid delta-seconds.
//
//	go test -run '^$' -fuzz FuzzCacheControl -fuzztime 30s ./gateway
func FuzzCacheControl(f *testing.F) {
	for _, cc := range []string{
		"", "max-age=60", "public, max-age=0", "s-maxage=30, max-age=600", "no-store", "private, max-age=60",
		`max-age="60"`, "max-age=abc", "max-age=-1", "max-age=99999999999999999999", "max-age=9300000000",
		"No-Cache", " , ,=,", "max-age", "s-maxage=abc, max-age=60", "max-age=+5", "no-cache=\"Set-Cookie\"",
	} {
		f.Add(cc, uint32(300))
	}
	f.Fuzz(func(t *testing.T, cc string, routeSeconds uint32) {
		routeTTL := time.Duration(routeSeconds) * time.Second
		cr := &cachedResponse{Status: http.StatusOK, Header: map[string][]string{"Cache-Control": {cc}}}
		ttl := storeTTL(cr, routeTTL)
		if ttl < 0 || ttl > routeTTL {
			t.Fatalf("ttl %v outside [0, %v] for %q", ttl, routeTTL, cc)
		}
		for _, d := range []string{"no-store", "private", "no-cache"} {
			if hasDirective(cc, d) && ttl != 0 {
				t.Fatalf("%q holds %s, but ttl %v", cc, d, ttl)
			}
		}
		for _, d := range []string{"s-maxage", "max-age", "no-store", "private"} {
			v, ok := directiveValue(cc, d)
			if ok != hasDirective(cc, d) {
				t.Fatalf("directiveValue and hasDirective disagree on %s in %q", d, cc)
			}
			if !ok && v != "" {
				t.Fatalf("value %q for an absent %s", v, d)
			}
		}
		if ttl > 0 {
			for _, d := range []string{"s-maxage", "max-age"} {
				if v, ok := directiveValue(cc, d); ok {
					if _, valid := deltaSeconds(v); !valid {
						t.Fatalf("kept %v with an invalid %s=%q", ttl, d, v)
					}
					break
				}
			}
		}
		if cr.Status = http.StatusNotFound; storeTTL(cr, routeTTL) != 0 {
			t.Fatal("a 404 is kept")
		}
	})
}
