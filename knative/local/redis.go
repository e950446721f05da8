package local

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// redisServer is the Redis every process shares: external, a redis-server child, or an
// in-process miniredis.
type redisServer struct {
	url   string
	kind  string
	close func() error
}

func startRedis(ctx context.Context, opts Options, out *output) (*redisServer, error) {
	switch {
	case opts.RedisURL != "":
		return &redisServer{url: opts.RedisURL, kind: "external", close: func() error { return nil }}, nil
	case opts.RedisServerPath != "":
		return startRedisServer(ctx, opts.RedisServerPath, out)
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("local: miniredis: %w", err)
	}
	return &redisServer{
		url:   "redis://" + m.Addr() + "/0",
		kind:  "embedded miniredis (in-process)",
		close: func() error { m.Close(); return nil },
	}, nil
}

// startRedisServer runs redis-server on a free loopback port with no persistence, its
// working directory in a temporary directory, and waits until it answers PING.
func startRedisServer(ctx context.Context, bin string, out *output) (*redisServer, error) {
	port, err := checkPort(0)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "day-trade-redis-")
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
	cmd.Stdout = out.writer("redis")
	cmd.Stderr = out.writer("redis")
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("local: %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.flush(cmd)
		close(done)
	}()
	stop := func() error {
		select {
		case <-done:
		default:
			terminateGroup(cmd)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				killGroup(cmd)
				<-done
			}
		}
		return os.RemoveAll(dir)
	}

	deadline := time.Now().Add(10 * time.Second)
	for !ping(addr) {
		select {
		case <-done:
			_ = stop()
			return nil, fmt.Errorf("local: %s exited at start: %v", bin, cmd.ProcessState)
		case <-ctx.Done():
			_ = stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stop()
			return nil, fmt.Errorf("local: %s did not answer PING on %s", bin, addr)
		}
	}
	return &redisServer{url: "redis://" + addr + "/0", kind: "embedded redis-server (" + bin + ")", close: stop}, nil
}

// ping speaks just enough RESP to know the server is up.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}
