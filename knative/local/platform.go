// Package local runs the whole platform on one machine the way Knative runs it in a cluster:
// every catalog entry is a child process speaking the Knative runtime contract ($PORT,
// K_SERVICE, /health/liveness), the gateway listens on a fixed port, and an activator routes
// cluster-local Knative host names to the processes, starting a scale-to-zero function on its
// first request (holding the request, as Knative's activator does) and stopping it after its
// idle window.
//
// The activator is also the delivery path for a later Broker and Triggers: delivering a
// CloudEvent to a subscriber is an HTTP POST to Function.Host(ns) through ActivatorURL, so
// cold starts, in-flight tracking and scale to zero apply to events exactly as to requests.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/auth"
)

// Options configure a local platform. The zero value runs the catalog from the working
// directory on free ports with an in-process Redis.
type Options struct {
	// Functions is the process table; nil means functions.Catalog().
	Functions []functions.Function
	// Namespace is the Knative namespace in host names; "" means "day-trade".
	Namespace string
	// Dir is the module root go build runs in; "" means the working directory.
	Dir string
	// BinDir holds one binary per function, named after the last element of its import
	// path; relative to Dir; "" means "bin".
	BinDir string
	// SkipBuild uses the binaries already in BinDir.
	SkipBuild bool
	// GatewayPort and ActivatorPort are loopback ports; 0 picks a free one.
	GatewayPort   int
	ActivatorPort int
	// RedisURL points at an existing Redis; "" starts an embedded one.
	RedisURL string
	// RedisServerPath is the redis-server binary for the embedded Redis; "" runs an
	// in-process Redis-protocol server (miniredis) instead.
	RedisServerPath string
	// IdleWindow, when positive, replaces every scale-to-zero function's idle window.
	IdleWindow time.Duration
	// StartTimeout bounds process start to live; 0 means 10s.
	StartTimeout time.Duration
	// StopTimeout is the grace between SIGTERM and SIGKILL; 0 means 10s.
	StopTimeout time.Duration
	// Env is the environment every child inherits; nil means os.Environ().
	Env []string
	// Log receives the platform's own structured logs; nil logs text to Output.
	Log *slog.Logger
	// Output receives the children's stdout and stderr, prefixed by name; nil means os.Stderr.
	Output io.Writer
	// Broker configures the local Broker and Triggers (see broker.go).
	Broker BrokerOptions
	// RedisACL gives every function its own Redis ACL user, allowed exactly its catalog
	// RedisKeys as in production, and REDIS_URL with that user; the default user gets a
	// password only the platform knows. It needs redis-server (RedisServerPath) or an
	// external Redis whose REDIS_URL may run ACL SETUSER.
	RedisACL bool
	// Schedules are played as Knative PingSources through the Broker (see ping.go); nil
	// sends no ticks. cmd/platform passes functions.Schedules() unless -ping=false.
	Schedules []functions.Schedule

	// pickPort returns a free loopback port for a child; nil means checkPort(0). Tests
	// replace it (export_test.go) to hand a start a port another process holds.
	pickPort func() (int, error)
}

const (
	defaultNamespace    = "day-trade"
	defaultIdleWindow   = 60 * time.Second
	defaultStartTimeout = 10 * time.Second
	defaultStopTimeout  = 10 * time.Second
	// keptColdStarts bounds the per-function history ColdStarts returns.
	keptColdStarts = 256
)

var errClosed = errors.New("local platform is shutting down")

// Platform is a running local platform.
type Platform struct {
	opts      Options
	log       *slog.Logger
	out       *output
	ctx       context.Context // cancelled when Close begins
	cancel    context.CancelFunc
	procs     map[string]*proc
	names     []string // sorted
	gateway   string   // the gateway's name, "" if the table has none
	gwPort    int
	activator *activator
	srv       *http.Server
	actAddr   string
	redis     *redisServer
	// redisURLs are the functions' own REDIS_URLs when Options.RedisACL is set.
	redisURLs map[string]string
	// tokenKey and tokenPub are the internal identity-token key pair of this run.
	tokenKey, tokenPub string
	broker             *broker

	lifeMu  sync.Mutex
	closing bool
	wg      sync.WaitGroup // child watchers and background work; Close waits for all

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Start builds the binaries (unless opts.SkipBuild), starts Redis, the activator, the gateway
// and every warm service, and returns once they are live. The platform shuts down when ctx
// is cancelled or Close is called.
func Start(ctx context.Context, opts Options) (*Platform, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	procs, names, gateway, err := newProcs(opts)
	if err != nil {
		return nil, err
	}
	if !opts.SkipBuild {
		if err := Build(ctx, opts.Dir, opts.BinDir, opts.Functions, opts.Output); err != nil {
			return nil, err
		}
	}
	for _, name := range names {
		if _, err := os.Stat(procs[name].bin); err != nil {
			return nil, fmt.Errorf("local: binary for %s: %w (build it or unset SkipBuild)", name, err)
		}
	}

	gwPort := opts.GatewayPort
	if gateway != "" {
		if gwPort, err = checkPort(opts.GatewayPort); err != nil {
			return nil, fmt.Errorf("local: gateway port: %w", err)
		}
		procs[gateway].port = gwPort
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.ActivatorPort)))
	if err != nil {
		return nil, fmt.Errorf("local: activator: %w", err)
	}
	out := newOutput(opts.Output, names)
	rds, err := startRedis(ctx, opts, out)
	if err != nil {
		ln.Close()
		return nil, err
	}
	var redisURLs map[string]string
	if opts.RedisACL {
		if redisURLs, err = rds.applyACL(ctx, opts.Functions); err != nil {
			ln.Close()
			_ = rds.close()
			return nil, err
		}
	}

	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &Platform{
		opts: opts, log: opts.Log, out: out, ctx: pctx, cancel: cancel,
		procs: procs, names: names, gateway: gateway, gwPort: gwPort,
		actAddr: ln.Addr().String(), redis: rds, redisURLs: redisURLs, done: make(chan struct{}),
	}
	// One identity-token key pair per run: the gateway signs, every function verifies.
	p.tokenKey, p.tokenPub = auth.GenerateInternalKey()
	p.activator = newActivator(p)
	p.srv = &http.Server{
		Handler:           p.activator,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	p.spawn(func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("activator stopped", "err", err)
		}
	})
	p.spawn(p.reapLoop)
	if err := p.startBroker(); err != nil {
		_ = p.Close()
		return nil, err
	}
	if err := p.startPingers(); err != nil {
		_ = p.Close()
		return nil, err
	}

	if err := p.startWarm(ctx); err != nil {
		_ = p.Close()
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			_ = p.Close()
		case <-p.done:
		}
	}()
	return p, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Functions == nil {
		o.Functions = functions.Catalog()
	}
	if o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	if o.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return o, err
		}
		o.Dir = wd
	}
	if o.BinDir == "" {
		o.BinDir = "bin"
	}
	if !filepath.IsAbs(o.BinDir) {
		o.BinDir = filepath.Join(o.Dir, o.BinDir)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = defaultStartTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = defaultStopTimeout
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(o.Output, nil))
	}
	if o.pickPort == nil {
		o.pickPort = func() (int, error) { return checkPort(0) }
	}
	return o, nil
}

// Build compiles every function's main package into binDir with one go build run in dir.
// Each binary is named after the last element of its import path (the function's name; the
// gateway's is "gateway").
func Build(ctx context.Context, dir, binDir string, fns []functions.Function, out io.Writer) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("local: build: %w", err)
	}
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	for _, fn := range fns {
		args = append(args, fn.ImportPath())
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("local: go build of %d binaries: %w", len(fns), err)
	}
	return nil
}

func binaryPath(binDir string, fn functions.Function) string {
	name := path.Base(fn.ImportPath())
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(binDir, name)
}

// checkPort returns port, or a free loopback port when port is 0, after checking it can be bound.
func checkPort(port int) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// spawn runs f in a goroutine Close waits for; it reports false once Close has begun.
func (p *Platform) spawn(f func()) bool {
	if !p.hold() {
		return false
	}
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// hold counts one unit of background work for Close to wait on, unless Close has begun.
func (p *Platform) hold() bool {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.closing {
		return false
	}
	p.wg.Add(1)
	return true
}

// startWarm starts the gateway and every min-scale >= 1 service and waits until they are live.
func (p *Platform) startWarm(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, name := range p.names {
		pr := p.procs[name]
		if !pr.warm {
			continue
		}
		wg.Go(func() {
			if _, err := p.ensure(ctx, pr, "warm", false); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("local: start %s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// GatewayURL is the gateway's base URL, or "" if the table has no gateway.
func (p *Platform) GatewayURL() string {
	if p.gateway == "" {
		return ""
	}
	return "http://127.0.0.1:" + strconv.Itoa(p.gwPort)
}

// ActivatorURL is the activator's base URL; requests to it are routed by their Host header.
func (p *Platform) ActivatorURL() string { return "http://" + p.actAddr }

// RedisURL is the REDIS_URL every process gets.
func (p *Platform) RedisURL() string { return p.redis.url }

// Running reports whether the named function has a live process.
func (p *Platform) Running(name string) bool {
	pr, ok := p.procs[name]
	if !ok {
		return false
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.cur != nil
}

// Pid returns the process id of the named function's running instance, or 0.
func (p *Platform) Pid(name string) int {
	pr, ok := p.procs[name]
	if !ok {
		return 0
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.cur == nil || pr.cur.cmd.Process == nil {
		return 0
	}
	return pr.cur.cmd.Process.Pid
}

// ColdStarts returns the recent start durations (process start to live) of the named
// function, oldest first.
func (p *Platform) ColdStarts(name string) []time.Duration {
	pr, ok := p.procs[name]
	if !ok {
		return nil
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]time.Duration(nil), pr.coldStarts...)
}

// Kill sends SIGKILL to the named function's process, as a crash would, and returns once it
// has exited. The next request starts it again; the gateway and warm services are restarted.
func (p *Platform) Kill(name string) error {
	pr, ok := p.procs[name]
	if !ok {
		return fmt.Errorf("local: no function %q", name)
	}
	pr.mu.Lock()
	inst := pr.cur
	pr.mu.Unlock()
	if inst == nil {
		return fmt.Errorf("local: %s is not running", name)
	}
	killGroup(inst.cmd)
	<-inst.done
	return nil
}

// Close stops accepting requests, sends SIGTERM to every child, waits for them (killing
// those that outlive StopTimeout) and stops the embedded Redis. It is safe to call twice.
func (p *Platform) Close() error {
	p.closeOnce.Do(func() {
		p.lifeMu.Lock()
		p.closing = true
		p.lifeMu.Unlock()
		p.cancel()

		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), p.opts.StopTimeout)
			defer cancel()
			if err := p.srv.Shutdown(ctx); err != nil {
				_ = p.srv.Close()
			}
		})
		for _, name := range p.names {
			pr := p.procs[name]
			pr.mu.Lock()
			pr.closed = true
			inst := pr.cur
			pr.cur = nil
			pr.mu.Unlock()
			if inst != nil {
				wg.Go(func() { inst.stop(p.opts.StopTimeout) })
			}
		}
		wg.Wait()
		p.wg.Wait()
		p.activator.transport.CloseIdleConnections()
		p.closeErr = p.redis.close()
		p.log.Info("local platform stopped")
		close(p.done)
	})
	<-p.done
	return p.closeErr
}

// Wait blocks until the platform has shut down and returns Close's error.
func (p *Platform) Wait() error {
	<-p.done
	return p.closeErr
}

// Summary writes where everything is: the gateway, the activator, Redis, and every function
// with its host and whether it is warm or scales to zero.
func (p *Platform) Summary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "local platform (namespace %s)\n", p.opts.Namespace)
	if p.gateway != "" {
		fmt.Fprintf(tw, "  gateway\t%s\n", p.GatewayURL())
	}
	fmt.Fprintf(tw, "  activator\t%s\troutes by Host: <name>.%s.svc.cluster.local\n", p.ActivatorURL(), p.opts.Namespace)
	fmt.Fprintf(tw, "  redis\t%s\t%s\n", p.redis.url, p.redis.kind)
	fmt.Fprintf(tw, "  broker\t%s\tBROKER_URL and K_SINK of every process\n", p.BrokerURL())
	fmt.Fprintln(tw, "  functions")
	for _, name := range p.names {
		pr := p.procs[name]
		state := fmt.Sprintf("scale-to-zero (idle %s)", pr.idle)
		if pr.warm {
			state = fmt.Sprintf("warm (min-scale %d)", max(pr.fn.Scaling.MinScale, 1))
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", name, pr.fn.Host(p.opts.Namespace), state)
	}
	_ = tw.Flush()
}

// sortedNames returns the keys of m in order.
func sortedNames(m map[string]*proc) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
