// Command package builds every catalog function as an AWS Lambda deployment package:
// dist/lambda/<name>.zip holding a static linux/arm64 `bootstrap` built with
// -tags lambda.norpc, the files lambda/template.yaml points at. Run it from the repository
// root (no zip tool needed):
//
//	go run ./lambda/cmd/package               # every function
//	go run ./lambda/cmd/package -only data-stocks,data-cache
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/lambda/bundle"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("package", flag.ContinueOnError)
	out := fl.String("out", "dist/lambda", "folder for the <name>.zip files")
	arch := fl.String("arch", "arm64", "GOARCH of the bootstrap: arm64 (as the template says) or amd64")
	only := fl.String("only", "", "comma-separated function names; empty builds every function")
	jobs := fl.Int("j", min(runtime.NumCPU(), 4), "builds at once")
	if err := fl.Parse(args); err != nil {
		return err
	}
	targets, err := pick(functions.Catalog(), *only)
	if err != nil {
		return err
	}
	opts := bundle.Options{GOOS: "linux", GOARCH: *arch}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(*jobs, 1))
	var mu sync.Mutex
	for _, f := range targets {
		g.Go(func() error {
			path, err := bundle.Package(ctx, opts, f.Name, "./"+strings.TrimPrefix(f.ImportPath(), functions.Module+"/"), *out)
			if err != nil {
				return err
			}
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stdout, "%-40s %6.1f MB\n", path, float64(st.Size())/(1<<20))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d packages (linux/%s) in %s\n", len(targets), *arch, *out)
	return nil
}

// pick chooses the functions to build: every function the SAM template deploys (the
// gateway's role is played by the HTTP API), or the named ones.
func pick(fs []functions.Function, only string) ([]functions.Function, error) {
	var out []functions.Function
	for _, f := range fs {
		if f.Kind != functions.KindGateway {
			out = append(out, f)
		}
	}
	if only == "" {
		return out, nil
	}
	var picked []functions.Function
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(out, func(f functions.Function) bool { return f.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("%q is not a function of the catalog (the gateway is not deployed to Lambda)", name)
		}
		picked = append(picked, out[i])
	}
	return picked, nil
}
