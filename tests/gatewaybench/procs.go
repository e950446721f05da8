package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server the harness started: one process (Go servers, Caddy) or a master with
// workers (nginx), whose CPU time is read from /proc.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // host:port it serves on
	log  string // file holding its stdout and stderr
	done chan struct{}
}

// startProc runs name with args and env (added to the harness's own), output to a log file
// in dir, and waits until ready answers true.
func startProc(ctx context.Context, dir, name, addr string, env []string, ready func() bool, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group: Ctrl-C reaches the harness only
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, addr: addr, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for !ready() {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited at start; see %s:\n%s", name, logPath, tail(logPath, 20))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready after 20s; see %s:\n%s", name, logPath, tail(logPath, 20))
		}
	}
	return p, nil
}

// stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (p *proc) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// cpuTime is the user+system CPU time of pid and of its children (nginx workers), from
// /proc/<pid>/stat fields 14 and 15 (clock ticks, 100 per second on Linux).
func cpuTime(pid int) time.Duration {
	pids := []int{pid}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			n, err := strconv.Atoi(e.Name())
			if err != nil || n == pid {
				continue
			}
			if f := statFields(n); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				pids = append(pids, n)
			}
		}
	}
	var ticks int64
	for _, p := range pids {
		f := statFields(p)
		if len(f) < 13 {
			continue
		}
		// After the command (field 2), field 3 is index 0: utime is field 14 → index 11.
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// machineBusy is the CPU time all cores spent not idle since boot (/proc/stat: user, nice,
// system, irq, softirq, steal).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// statFields returns /proc/<pid>/stat after the command name: state, ppid, ...
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func httpReady(url string) func() bool {
	c := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode < 500
	}
}

// redisServer is a redis-server child with an append-only file (fsync every second, Redis's
// default for AOF), so that a SIGKILL and a restart keep the API key the harness created
// seconds before, as a production Redis with AOF would.
type redisServer struct {
	dir  string
	addr string
	p    *proc
}

func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rd := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return nil, err
	}
	r := &redisServer{dir: rd, addr: addr}
	return r, r.start(ctx)
}

func (r *redisServer) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.addr)
	p, err := startProc(ctx, r.dir, "redis-server", r.addr, nil, func() bool { return redisPing(r.addr) }, "redis-server",
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
		"--dir", r.dir, "--logfile", "")
	if err != nil {
		return err
	}
	r.p = p
	return nil
}

// kill is a crash: SIGKILL, no shutdown.
func (r *redisServer) kill() {
	_ = r.p.cmd.Process.Kill()
	<-r.p.done
}

func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
