package local

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
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

// errRedisExited is a redis-server that exited at start, most often because another process
// took the free port between checkPort and its bind.
var errRedisExited = errors.New("exited at start")

// startRedisServer runs redis-server on a free loopback port with no persistence, its
// working directory in a temporary directory, and waits until it answers PING. A server
// that exits at start (the port was taken in the meantime) is started again on another port.
func startRedisServer(ctx context.Context, bin string, out *output) (*redisServer, error) {
	var err error
	for range 3 {
		var r *redisServer
		if r, err = startRedisServerOnce(ctx, bin, out); !errors.Is(err, errRedisExited) {
			return r, err
		}
	}
	return nil, err
}

func startRedisServerOnce(ctx context.Context, bin string, out *output) (*redisServer, error) {
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
			return nil, fmt.Errorf("local: %s %w: %v", bin, errRedisExited, cmd.ProcessState)
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

// applyACL gives every function its own Redis ACL user, with the rule the manifests write
// into the cluster's ACL file (functions.Function.RedisACLRule) and a random password, and
// puts a random password on the default user, which only the platform (the Broker, RedisURL)
// keeps using. It returns each function's REDIS_URL. It needs a real redis-server: miniredis
// has no ACLs.
func (r *redisServer) applyACL(ctx context.Context, fs []functions.Function) (map[string]string, error) {
	if strings.HasPrefix(r.kind, "embedded miniredis") {
		return nil, errors.New("local: Redis ACL users need redis-server (miniredis has no ACLs)")
	}
	opts, err := redis.ParseURL(r.url)
	if err != nil {
		return nil, err
	}
	admin := redis.NewClient(opts)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	urls := map[string]string{}
	for _, f := range fs {
		pw := randomHex()
		args := []any{"ACL", "SETUSER", f.Name, "reset", "on", ">" + pw}
		for _, part := range strings.Fields(f.RedisACLRule()) {
			args = append(args, part)
		}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			return nil, fmt.Errorf("local: ACL SETUSER %s: %w", f.Name, err)
		}
		u := *mustURL(r.url)
		u.User = url.UserPassword(f.Name, pw)
		urls[f.Name] = u.String()
	}
	// Last, so that the connection above did not need it: the default user keeps every
	// right but needs this password from now on.
	pw := randomHex()
	if err := admin.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">"+pw).Err(); err != nil {
		return nil, fmt.Errorf("local: ACL SETUSER default: %w", err)
	}
	u := *mustURL(r.url)
	u.User = url.UserPassword("default", pw)
	r.url = u.String()
	return urls, nil
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err) // r.url was parsed by redis.ParseURL already
	}
	return u
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
