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
