package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/day-trade/platform/functions"
)

// proc is one catalog entry: at most one live instance (Knative's max-scale is not played
// locally), the single start in progress, and the in-flight count that drives scale to zero.
type proc struct {
	fn   functions.Function
	bin  string
	port int           // fixed port (the gateway's); 0 picks a free port per start
	idle time.Duration // 0 for warm processes, never scaled to zero
	warm bool          // started at once and restarted when it dies

	mu         sync.Mutex
	cur        *instance
	starting   *startCall
	inflight   int
	lastActive time.Time
	closed     bool
	failures   int // consecutive unexpected exits, for the restart backoff
	coldStarts []time.Duration
}

// startCall is one start shared by every request that arrives while it runs.
type startCall struct {
	done chan struct{}
	err  error
}

// instance is one child process.
type instance struct {
	cmd      *exec.Cmd
	addr     string
	started  time.Time     // process start
	readyAt  time.Time     // first 200 from /health/liveness
	stopping atomic.Bool   // the platform is stopping it on purpose
	exited   bool          // guarded by the proc's mu
	done     chan struct{} // closed once the process has exited and been reaped
	exitErr  error         // set before done is closed
}

func newProcs(opts Options) (map[string]*proc, []string, string, error) {
	procs := make(map[string]*proc, len(opts.Functions))
	bins := map[string]string{}
	gateway := ""
	for _, fn := range opts.Functions {
		if fn.Name == "" {
			return nil, nil, "", fmt.Errorf("local: function with no name")
		}
		if _, dup := procs[fn.Name]; dup {
			return nil, nil, "", fmt.Errorf("local: duplicate function %q", fn.Name)
		}
		base := path.Base(fn.ImportPath())
		if other, dup := bins[base]; dup {
			return nil, nil, "", fmt.Errorf("local: %s and %s both build a binary named %q", other, fn.Name, base)
		}
		bins[base] = fn.Name
		pr := &proc{fn: fn, bin: binaryPath(opts.BinDir, fn)}
		switch {
		case fn.Kind == functions.KindGateway:
			if gateway != "" {
				return nil, nil, "", fmt.Errorf("local: two gateways: %s and %s", gateway, fn.Name)
			}
			gateway = fn.Name
			pr.warm = true
		case fn.Scaling.MinScale >= 1:
			pr.warm = true
		default:
			pr.idle = fn.Scaling.IdleWindow
			if opts.IdleWindow > 0 {
				pr.idle = opts.IdleWindow
			}
			if pr.idle <= 0 {
				pr.idle = defaultIdleWindow
			}
		}
		procs[fn.Name] = pr
	}
	return procs, sortedNames(procs), gateway, nil
}

// ensure returns the live instance of pr, starting one if none runs; concurrent callers
// share one start. With hold, the caller is counted in flight until it calls release.
func (p *Platform) ensure(ctx context.Context, pr *proc, reason string, hold bool) (*instance, error) {
	for {
		pr.mu.Lock()
		if pr.closed {
			pr.mu.Unlock()
			return nil, errClosed
		}
		if inst := pr.cur; inst != nil {
			if hold {
				pr.inflight++
			}
			pr.mu.Unlock()
			return inst, nil
		}
		call := pr.starting
		if call == nil {
			call = &startCall{done: make(chan struct{})}
			if !p.spawn(func() { p.start(pr, call, reason) }) {
				pr.mu.Unlock()
				return nil, errClosed
			}
			pr.starting = call
		}
		pr.mu.Unlock()
		select {
		case <-call.done:
			if call.err != nil {
				return nil, call.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release ends one in-flight request counted by ensure.
func (p *Platform) release(pr *proc) {
	pr.mu.Lock()
	pr.inflight--
	pr.lastActive = time.Now()
	pr.mu.Unlock()
}

// start launches a process for pr and publishes it, or the error, to everyone waiting on call.
func (p *Platform) start(pr *proc, call *startCall, reason string) {
	inst, err := p.launch(pr)
	pr.mu.Lock()
	pr.starting = nil
	var orphan *instance
	switch {
	case err != nil:
	case pr.closed:
		err, orphan = errClosed, inst
	case inst.exited:
		err = fmt.Errorf("%s exited right after it was live: %v", pr.fn.Name, inst.exitErr)
	default:
		pr.cur = inst
		pr.lastActive = time.Now()
		pr.coldStarts = append(pr.coldStarts, inst.readyIn())
		if len(pr.coldStarts) > keptColdStarts {
			pr.coldStarts = pr.coldStarts[len(pr.coldStarts)-keptColdStarts:]
		}
	}
	call.err = err
	pr.mu.Unlock()
	close(call.done)

	switch {
	case orphan != nil:
		orphan.stop(p.opts.StopTimeout)
	case err == nil:
		d := inst.readyIn()
		p.log.Info("cold start", "function", pr.fn.Name, "ms", float64(d.Microseconds())/1000,
			"reason", reason, "pid", inst.cmd.Process.Pid, "addr", inst.addr)
	case err != errClosed:
		p.log.Error("start failed", "function", pr.fn.Name, "reason", reason, "err", err)
	}
}

// Why a start on a port the platform picked is tried again on another one: the pick
// (checkPort) closes its listener before the child binds, and another process can take the
// port in between. The child then exits at start (address in use), or, worse, the other
// process answers the liveness probe in its place.
var (
	errExitedEarly = errors.New("exited before it was live")
	errPortTaken   = errors.New("another process answers on its port")
)

// launchAttempts bounds the starts of one cold start on freshly picked ports.
const launchAttempts = 3

// launch starts pr's binary and waits until it answers GET /health/liveness with 200. On a
// port it picked, a child that exits before it is live or whose port another process
// answers on is started again on another port; a fixed port (the gateway's) is not.
func (p *Platform) launch(pr *proc) (*instance, error) {
	if pr.port != 0 {
		return p.launchOn(pr, pr.port)
	}
	var err error
	for attempt := 1; attempt <= launchAttempts; attempt++ {
		var port int
		if port, err = p.opts.pickPort(); err != nil {
			return nil, err
		}
		var inst *instance
		inst, err = p.launchOn(pr, port)
		if !errors.Is(err, errExitedEarly) && !errors.Is(err, errPortTaken) {
			return inst, err
		}
		if attempt < launchAttempts {
			p.log.Warn("start failed, trying another port", "function", pr.fn.Name,
				"port", port, "attempt", attempt, "err", err)
		}
	}
	return nil, fmt.Errorf("%d starts on picked ports failed, the last: %w", launchAttempts, err)
}

// launchOn starts pr's binary on port and waits until it is live.
// Liveness, not readiness: a function whose Redis is down is still up and must answer its
// own 503, which only it can do.
func (p *Platform) launchOn(pr *proc, port int) (*instance, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(pr.bin)
	cmd.Env = p.childEnv(pr.fn, port)
	cmd.Stdout = p.out.writer(pr.fn.Name)
	cmd.Stderr = p.out.writer(pr.fn.Name)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second // a grandchild holding the pipes must not block Wait
	inst := &instance{cmd: cmd, addr: addr, done: make(chan struct{})}

	if !p.hold() { // the watcher's unit of work, so Close waits for this process
		return nil, errClosed
	}
	inst.started = time.Now()
	if err := cmd.Start(); err != nil {
		p.wg.Done()
		return nil, fmt.Errorf("start %s: %w", pr.bin, err)
	}
	go p.watch(pr, inst)

	if err := p.waitLive(inst); err != nil {
		inst.stop(p.opts.StopTimeout)
		return nil, err
	}
	inst.readyAt = time.Now()
	return inst, nil
}

// readyIn is the cold start: process start to the first 200 from /health/liveness.
func (i *instance) readyIn() time.Duration { return i.readyAt.Sub(i.started) }

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	Timeout:   time.Second,
}

// waitLive polls the liveness endpoint: every 2ms for the first 100ms (a Go binary is
// usually live within tens of milliseconds, and the poll interval is the error on the
// measured cold start), then backing off to 25ms.
func (p *Platform) waitLive(inst *instance) error {
	url := "http://" + inst.addr + "/health/liveness"
	timeout := time.NewTimer(p.opts.StartTimeout)
	defer timeout.Stop()
	delay := 2 * time.Millisecond
	for {
		live, err := probe(p.ctx, url, inst.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("%s: %w", inst.addr, err)
		}
		if live {
			return nil
		}
		if time.Since(inst.started) > 100*time.Millisecond {
			delay = min(delay*2, 25*time.Millisecond)
		}
		select {
		case <-inst.done:
			return fmt.Errorf("%w: %v", errExitedEarly, inst.exitErr)
		case <-timeout.C:
			return fmt.Errorf("not live after %s", p.opts.StartTimeout)
		case <-p.ctx.Done():
			return errClosed
		case <-time.After(delay):
		}
	}
}

// probe asks url for liveness on behalf of the child with pid. It reports live for a 200
// from that process, and errPortTaken for a 200 from another one. A 200 that names no pid
// (a child not built on shared/runtime, such as tests/chaos/faultfn) is taken as live: the
// platform cannot tell whose it is.
func probe(ctx context.Context, url string, pid int) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, nil
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, nil
	}
	var who struct {
		PID     int    `json:"pid"`
		Service string `json:"service"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if json.Unmarshal(body, &who) != nil || who.PID == 0 || who.PID == pid {
		return true, nil
	}
	return false, fmt.Errorf("%w: pid %d (service %q), want pid %d", errPortTaken, who.PID, who.Service, pid)
}

// watch reaps inst and updates pr when it exits. An exit the platform did not ask for marks
// the function stopped (the next request starts it again) and restarts warm processes.
func (p *Platform) watch(pr *proc, inst *instance) {
	defer p.wg.Done()
	err := inst.cmd.Wait()
	p.out.flush(inst.cmd)
	inst.exitErr = err

	pr.mu.Lock()
	inst.exited = true
	current := pr.cur == inst
	if current {
		pr.cur = nil
	}
	var backoff time.Duration
	restart := current && pr.warm && !pr.closed
	if restart {
		if time.Since(inst.started) > 30*time.Second {
			pr.failures = 0
		}
		pr.failures++
		backoff = restartBackoff(pr.failures)
	}
	pr.mu.Unlock()
	close(inst.done)

	if !current {
		return
	}
	p.log.Warn("process exited", "function", pr.fn.Name, "pid", inst.cmd.Process.Pid, "err", err)
	if restart {
		p.log.Info("restarting", "function", pr.fn.Name, "after", backoff)
		p.spawn(func() { p.restart(pr, backoff) })
	}
}

// restartBackoff doubles from 100ms up to 10s.
func restartBackoff(failures int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < failures && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

func (p *Platform) restart(pr *proc, after time.Duration) {
	t := time.NewTimer(after)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return
	case <-t.C:
	}
	if _, err := p.ensure(p.ctx, pr, "restart", false); err != nil && p.ctx.Err() == nil {
		pr.mu.Lock()
		pr.failures++
		next := restartBackoff(pr.failures)
		pr.mu.Unlock()
		p.spawn(func() { p.restart(pr, next) })
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and waits for the exit.
func (i *instance) stop(grace time.Duration) {
	i.stopping.Store(true)
	select {
	case <-i.done:
		return // already reaped; its pid may belong to someone else now
	default:
	}
	terminateGroup(i.cmd)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-i.done:
		return
	case <-t.C:
	}
	killGroup(i.cmd)
	<-i.done
}

// reapLoop stops scale-to-zero functions that have had no request in flight for their idle
// window, checking a few times per window.
func (p *Platform) reapLoop() {
	interval := time.Second
	for _, pr := range p.procs {
		if pr.idle > 0 {
			interval = min(interval, pr.idle/8)
		}
	}
	interval = max(interval, 10*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			for _, name := range p.names {
				p.reapIfIdle(p.procs[name], now)
			}
		}
	}
}

func (p *Platform) reapIfIdle(pr *proc, now time.Time) {
	if pr.idle <= 0 {
		return
	}
	pr.mu.Lock()
	inst := pr.cur
	if inst == nil || pr.inflight > 0 || now.Sub(pr.lastActive) < pr.idle {
		pr.mu.Unlock()
		return
	}
	pr.cur = nil
	inst.stopping.Store(true)
	pr.mu.Unlock()
	p.log.Info("scaled to zero", "function", pr.fn.Name, "idle", pr.idle.String(), "pid", inst.cmd.Process.Pid)
	if !p.spawn(func() { inst.stop(p.opts.StopTimeout) }) {
		inst.stop(p.opts.StopTimeout)
	}
}
