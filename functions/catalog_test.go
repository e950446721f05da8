package functions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCatalogIsValid(t *testing.T) {
	if err := Validate(Catalog()); err != nil {
		t.Fatal(err)
	}
}

func TestEveryFunctionHasAFolder(t *testing.T) {
	for _, f := range Catalog() {
		if f.Kind == KindGateway {
			continue
		}
		if _, err := os.Stat(filepath.Join(f.Name, "main.go")); err != nil {
			t.Errorf("%s: no functions/%s/main.go: %v", f.Name, f.Name, err)
		}
	}
}

func TestValidateCatchesMistakes(t *testing.T) {
	good := Function{Name: "x-y", Kind: KindFunction, Scaling: defaultScaling, Timeout: time.Second, KeyPrefix: "x",
		Routes: []Route{{Method: "GET", Path: "/api/v1/x", Roles: readers}}}
	tests := map[string]struct {
		mutate func(f *Function)
		want   string
	}{
		"bad name":            {func(f *Function) { f.Name = "X_Y" }, "DNS label"},
		"route without roles": {func(f *Function) { f.Routes[0].Roles = nil }, "declares no roles"},
		"route outside api":   {func(f *Function) { f.Routes[0].Path = "/x" }, "not under /api/v1/"},
		"warm service at 0":   {func(f *Function) { f.Kind = KindService; f.Scaling.MinScale = 0 }, "min-scale >= 1"},
		"bad event type":      {func(f *Function) { f.Events = []Subscription{{Type: "batch"}} }, "event type"},
		"unknown callee":      {func(f *Function) { f.Calls = []string{"nope"} }, "unknown service"},
		"no idle window":      {func(f *Function) { f.Scaling.IdleWindow = 0 }, "idle window"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := good
			f.Routes = append([]Route(nil), good.Routes...)
			tc.mutate(&f)
			err := Validate([]Function{f})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	dup := good
	if err := Validate([]Function{good, dup}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("duplicate not caught: %v", err)
	}
}

func TestSubscriptionPolicy(t *testing.T) {
	tests := map[string]struct {
		sub        Subscription
		subscriber string
		want       Delivery
	}{
		"defaults":            {Subscription{Type: "t"}, "fn", DefaultDelivery},
		"own retry":           {Subscription{Delivery: Delivery{Retry: 2}}, "fn", Delivery{Retry: 2, BackoffDelay: DefaultDelivery.BackoffDelay, DeadLetterSink: DeadLetterFunction}},
		"no retries":          {Subscription{Delivery: Delivery{Retry: -1}}, "fn", Delivery{Retry: 0, BackoffDelay: DefaultDelivery.BackoffDelay, DeadLetterSink: DeadLetterFunction}},
		"own backoff":         {Subscription{Delivery: Delivery{BackoffDelay: time.Second}}, "fn", Delivery{Retry: DefaultDelivery.Retry, BackoffDelay: time.Second, DeadLetterSink: DeadLetterFunction}},
		"own sink":            {Subscription{Delivery: Delivery{DeadLetterSink: "other"}}, "fn", Delivery{Retry: DefaultDelivery.Retry, BackoffDelay: DefaultDelivery.BackoffDelay, DeadLetterSink: "other"}},
		"the sink itself":     {Subscription{}, DeadLetterFunction, Delivery{Retry: DefaultDelivery.Retry, BackoffDelay: DefaultDelivery.BackoffDelay}},
		"own sink subscribes": {Subscription{Delivery: Delivery{DeadLetterSink: "other"}}, "other", Delivery{Retry: DefaultDelivery.Retry, BackoffDelay: DefaultDelivery.BackoffDelay}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.sub.Policy(tc.subscriber); got != tc.want {
				t.Errorf("Policy = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestValidateRedisKeysAndDelivery(t *testing.T) {
	good := Function{Name: "x-y", Kind: KindFunction, Scaling: defaultScaling, Timeout: time.Second, KeyPrefix: "x"}
	for name, tc := range map[string]struct {
		mutate func(f *Function)
		want   string
	}{
		"ACL syntax in a pattern": {func(f *Function) { f.RedisKeys = []string{"x:* ~*"} }, "Redis key pattern"},
		"glob inside a pattern":   {func(f *Function) { f.RedisKeys = []string{"x:*:y"} }, "Redis key pattern"},
		"unknown sink": {func(f *Function) {
			f.Events = []Subscription{{Type: "com.daytrade.x.y.done", Delivery: Delivery{DeadLetterSink: "nope"}}}
		}, "dead-letter sink"},
		"too many retries": {func(f *Function) {
			f.Events = []Subscription{{Type: "com.daytrade.x.y.done", Delivery: Delivery{Retry: 100}}}
		}, "out of range"},
	} {
		t.Run(name, func(t *testing.T) {
			f := good
			tc.mutate(&f)
			if err := Validate([]Function{f}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	f := good
	f.RedisKeys = []string{"x:*", "jobs:*", "exec:sched-active", "rate:gw:*"}
	if err := Validate([]Function{f}); err != nil {
		t.Fatalf("valid patterns rejected: %v", err)
	}
	if got := good.RedisPatterns(); len(got) != 1 || got[0] != "x:*" {
		t.Errorf("default patterns %v, want [x:*]", got)
	}
}
