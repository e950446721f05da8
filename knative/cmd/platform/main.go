// Command platform runs the whole system on one machine as Knative would (see package
// knative/local): `make run`, then call http://127.0.0.1:8080/api/v1/... and press Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/local"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once; children die with us (Pdeathsig)
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Environ(), os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "platform:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, environ []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts  = local.Options{Env: environ, Output: stderr, RedisURL: getenv("REDIS_URL")}
		redis string
		ping  bool
	)
	fs.IntVar(&opts.GatewayPort, "gateway-port", 8080, "gateway port on 127.0.0.1")
	fs.IntVar(&opts.ActivatorPort, "activator-port", 8081, "activator port on 127.0.0.1 (routes by Knative Host)")
	fs.StringVar(&opts.BinDir, "bin", "bin", "directory for the function binaries")
	fs.StringVar(&opts.Namespace, "namespace", "day-trade", "Knative namespace in host names")
	fs.BoolVar(&opts.SkipBuild, "skip-build", false, "use the binaries already in -bin")
	fs.DurationVar(&opts.IdleWindow, "idle", 0, "override every scale-to-zero function's idle window (0 = catalog)")
	fs.StringVar(&redis, "redis", "auto", "embedded Redis when REDIS_URL is unset: auto|redis-server|miniredis")
	fs.BoolVar(&opts.RedisACL, "redis-acl", false, "give each function its own Redis ACL user (its catalog RedisKeys), as in production; needs redis-server")
	fs.BoolVar(&ping, "ping", true, "send the catalog's cron ticks (its PingSources) through the Broker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if ping {
		opts.Schedules = functions.Schedules()
	}
	switch redis {
	case "auto":
		opts.RedisServerPath, _ = exec.LookPath("redis-server")
	case "redis-server":
		path, err := exec.LookPath("redis-server")
		if err != nil {
			return err
		}
		opts.RedisServerPath = path
	case "miniredis":
	default:
		return fmt.Errorf("-redis %q is not auto|redis-server|miniredis", redis)
	}
	opts.Log = slog.New(slog.NewTextHandler(stderr, nil))

	started := time.Now()
	p, err := local.Start(ctx, opts)
	if err != nil {
		return err
	}
	p.Summary(stderr)
	opts.Log.Info("local platform up; Ctrl-C to stop", "ms", time.Since(started).Milliseconds())
	return p.Wait()
}
