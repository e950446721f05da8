package manifests

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/functions"
)

var update = flag.Bool("update", false, "rewrite the committed manifests and the fixture golden files")

// goldenDirs: the real catalog's manifests are the committed knative/ tree; the fixture's
// live in testdata so a reviewer sees what the ensemble, Triggers and PingSource look like.
var goldenDirs = map[string]string{
	"catalog": "..",
	"fixture": filepath.Join("testdata", "fixture"),
}

func TestGolden(t *testing.T) {
	for name, dir := range goldenDirs {
		t.Run(name, func(t *testing.T) {
			files := mustGenerate(t, catalogs[name]())
			if *update {
				if _, _, err := Write(dir, files); err != nil {
					t.Fatal(err)
				}
			}
			for path, want := range files {
				got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
				if err != nil {
					t.Errorf("%s: %v (regenerate: go run ./knative/cmd/manifests)", path, err)
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from a fresh run; regenerate with go run ./knative/cmd/manifests (or go test ./knative/manifests -update)", path)
				}
			}
			stale, err := Stale(dir, files)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range stale {
				t.Errorf("%s: generated file the catalog no longer produces; regenerate to remove it", p)
			}
		})
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			a := mustGenerate(t, fs())
			reversed := fs()
			slices.Reverse(reversed)
			for i := range 5 {
				b := mustGenerate(t, reversed)
				if len(a) != len(b) {
					t.Fatalf("run %d: %d files, then %d", i, len(a), len(b))
				}
				for p := range a {
					if !bytes.Equal(a[p], b[p]) {
						t.Fatalf("run %d: %s differs between runs", i, p)
					}
				}
			}
		})
	}
}

func TestEveryFileIsMarkedGenerated(t *testing.T) {
	for name, fs := range catalogs {
		for path, b := range mustGenerate(t, fs()) {
			if !bytes.HasPrefix(b, []byte(Header)) {
				t.Errorf("%s: %s has no generated header", name, path)
			}
		}
	}
}

func TestGenerateRejects(t *testing.T) {
	with := func(edit func(fs []functions.Function) []functions.Function) []functions.Function {
		return edit(fixtureCatalog())
	}
	find := func(fs []functions.Function, name string) *functions.Function {
		for i := range fs {
			if fs[i].Name == name {
				return &fs[i]
			}
		}
		panic(name)
	}
	tests := map[string]struct {
		fs      []functions.Function
		opts    func(*Options)
		wantErr string
	}{
		"catalog invalid": {fs: with(func(fs []functions.Function) []functions.Function {
			find(fs, "ensemble").Scaling.MinScale = 0
			return fs
		}), wantErr: "min-scale >= 1"},
		"warm function": {fs: with(func(fs []functions.Function) []functions.Function {
			find(fs, "data-stocks").Scaling.MinScale = 1
			return fs
		}), wantErr: "scales to zero"},
		"no gateway": {fs: with(func(fs []functions.Function) []functions.Function {
			return slices.DeleteFunc(fs, func(f functions.Function) bool { return f.Kind == functions.KindGateway })
		}), wantErr: "no gateway"},
		"secret inlined": {fs: with(func(fs []functions.Function) []functions.Function {
			find(fs, "data-stocks").Env = map[string]string{"JQUANTS_API_KEY": "abc"}
			return fs
		}), wantErr: "looks like a secret"},
		"reserved env": {fs: with(func(fs []functions.Function) []functions.Function {
			find(fs, "data-stocks").Env = map[string]string{"REDIS_URL": "redis://x"}
			return fs
		}), wantErr: "set by the platform"},
		"relative event path": {fs: with(func(fs []functions.Function) []functions.Function {
			find(fs, "execution-scheduler").Events[0].Path = "events"
			return fs
		}), wantErr: "must start with /"},
		"bad key prefix": {fs: with(func(fs []functions.Function) []functions.Function {
			find(fs, "data-stocks").KeyPrefix = "data:*"
			return fs
		}), wantErr: "key prefix"},
		"bad quantity": {fs: fixtureCatalog(), opts: func(o *Options) {
			r := o.Resources[functions.KindFunction]
			r.MemoryLimit = "lots"
			o.Resources[functions.KindFunction] = r
		}, wantErr: "memory limit"},
		"bad schedule": {fs: fixtureCatalog(), opts: func(o *Options) {
			o.Schedules[0].Cron = "every minute"
		}, wantErr: "5-field cron"},
		"no activator principal": {fs: fixtureCatalog(), opts: func(o *Options) {
			o.ActivatorPrincipal = ""
		}, wantErr: "activator principal"},
		"autoscaler principal with a scheme": {fs: fixtureCatalog(), opts: func(o *Options) {
			o.AutoscalerPrincipal = "spiffe://" + o.AutoscalerPrincipal
		}, wantErr: "autoscaler principal"},
		"metrics scraper namespace only": {fs: fixtureCatalog(), opts: func(o *Options) {
			o.MetricsScraperPrincipal = "cluster.local/ns/monitoring"
		}, wantErr: "metrics scraper principal"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			opts := DefaultOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := Generate(tt.fs, opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Generate error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestServiceTimeoutFloor(t *testing.T) {
	files := mustGenerate(t, fixtureCatalog())
	if !bytes.Contains(files["base/services/ensemble.yaml"], []byte("timeoutSeconds: 300\n")) {
		t.Errorf("ensemble: want the %s floor on its 30s catalog timeout:\n%s", 5*time.Minute, files["base/services/ensemble.yaml"])
	}
}

func TestWriteRemovesOnlyStaleGeneratedFiles(t *testing.T) {
	dir := t.TempDir()
	files := mustGenerate(t, fixtureCatalog())
	if _, _, err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "base", "services", "gone.yaml")
	handWritten := filepath.Join(dir, "base", "notes.yaml")
	elsewhere := filepath.Join(dir, "manifests", "keep.yaml")
	for path, content := range map[string]string{stale: Header + "kind: Service\n", handWritten: "kind: Notes\n", elsewhere: Header} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	changed, removed, err := Write(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 0 {
		t.Errorf("rewrote unchanged files: %v", changed)
	}
	if !slices.Equal(removed, []string{"base/services/gone.yaml"}) {
		t.Errorf("removed %v, want only the stale generated file", removed)
	}
	for _, p := range []string{handWritten, elsewhere} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestFunctionBinariesStayFreeOfKnative guards the 60 MB line: only the generator and the
// commands under knative/cmd may link Knative or Istio.
func TestFunctionBinariesStayFreeOfKnative(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	var patterns []string
	for _, dir := range []string{"functions", "shared", "gateway", "events", "lambda"} {
		patterns = append(patterns, functions.Module+"/"+dir+"/...")
	}
	cmd := exec.Command(goTool, append([]string{"list", "-e", "-deps", "-f", "{{.ImportPath}}"}, patterns...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "knative.dev/") || strings.HasPrefix(p, "istio.io/") {
			t.Errorf("a function, gateway or shared package links %s", p)
		}
	}
}
