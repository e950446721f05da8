package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func newStore(t *testing.T) *Store {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return NewStore(rdb, store.NewKeys("notif"), 0)
}

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func notification(id string, targets ...Target) Notification {
	return Notification{ID: id, Type: "alert", Title: "Breakout", Message: "7203.T crossed its 20-day high", Priority: PriorityNormal,
		Targets: targets, CreatedAt: time.Now().UTC().Truncate(time.Second)}
}

// flaky is a webhook receiver that fails its first `failures` requests with 503.
type flaky struct {
	failures  int32
	calls     atomic.Int32
	mu        sync.Mutex
	delivered [][]byte
	headers   []http.Header
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if n <= f.failures {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	f.mu.Lock()
	f.delivered = append(f.delivered, body)
	f.headers = append(f.headers, r.Header.Clone())
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func TestWebhookFailingTwiceThenSucceedingGetsTheMessageOnceSigned(t *testing.T) {
	st := newStore(t)
	rx := &flaky{failures: 2}
	srv := httptest.NewServer(rx)
	defer srv.Close()
	secret := []byte("whsec_test")
	var slept []time.Duration
	d := &Dispatcher{Store: st, Sleep: func(ctx context.Context, dur time.Duration) error { slept = append(slept, dur); return nil },
		Senders: map[string]Sender{ChannelWebhook: &Webhook{Client: Guard{Allow: loopback}.Client(5 * time.Second), Secret: secret}}}
	n := notification("n1", Target{Channel: ChannelWebhook, URL: srv.URL + "/hook"})
	ctx := context.Background()
	if err := st.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := d.Deliver(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	// Delivering again (a redelivered event, a repeated call) sends nothing more.
	if err := d.Deliver(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if rx.calls.Load() != 3 || len(rx.delivered) != 1 || len(slept) != 2 {
		t.Fatalf("%d calls, %d delivered, %d waits", rx.calls.Load(), len(rx.delivered), len(slept))
	}
	h, body := rx.headers[0], rx.delivered[0]
	if err := Verify(secret, body, h.Get(HeaderSignature), time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("signature %q: %v", h.Get(HeaderSignature), err)
	}
	if !strings.Contains(h.Get(HeaderSignature), "t="+h.Get(HeaderTimestamp)+",") || h.Get(HeaderID) != "n1" {
		t.Errorf("headers %v", h)
	}
	var p WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil || p.ID != "n1" || p.Message != n.Message || p.Priority != PriorityNormal {
		t.Errorf("payload %s: %v", body, err)
	}
	// A tampered body or a wrong secret does not verify; nor does a stale timestamp.
	if Verify(secret, append(body, ' '), h.Get(HeaderSignature), time.Now(), time.Minute) == nil ||
		Verify([]byte("other"), body, h.Get(HeaderSignature), time.Now(), time.Minute) == nil ||
		Verify(secret, body, h.Get(HeaderSignature), time.Now().Add(time.Hour), time.Minute) == nil {
		t.Error("a bad signature verified")
	}
	rec, err := st.Get(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	cs := rec.Channels[0]
	if rec.Overall() != OverallDelivered || cs.Status != StatusDelivered || cs.Attempts != 3 || cs.DeliveredAt == nil || cs.Target != srv.URL {
		t.Fatalf("status %+v overall %s", cs, rec.Overall())
	}
}

func TestChannelsRetryIndependently(t *testing.T) {
	st := newStore(t)
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) }))
	defer dead.Close()
	down := &flaky{failures: 1000}
	downSrv := httptest.NewServer(down)
	defer downSrv.Close()
	var slack []map[string]any
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		slack = append(slack, m)
		w.Write([]byte("ok"))
	}))
	defer slackSrv.Close()
	hc := Guard{Allow: loopback}.Client(5 * time.Second)
	d := &Dispatcher{Store: st, Sleep: noSleep, Senders: map[string]Sender{
		ChannelWebhook: &Webhook{Client: hc, Secret: []byte("s")},
		ChannelSlack:   &Slack{Client: hc},
		ChannelLog:     Log{Logger: discard()},
	}}
	n := notification("n2",
		Target{Channel: ChannelWebhook, URL: dead.URL},
		Target{Channel: ChannelWebhook, URL: downSrv.URL},
		Target{Channel: ChannelSlack, URL: slackSrv.URL + "/services/T000/B000/XXXX"},
		Target{Channel: ChannelLog},
		Target{Channel: ChannelEmail}, // not configured on this dispatcher
	)
	n.Priority = PriorityHigh
	ctx := context.Background()
	st.Create(ctx, n)
	if err := d.Deliver(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(ctx, n.ID)
	want := []struct {
		status   string
		attempts int
	}{{StatusFailed, 1}, {StatusFailed, 5}, {StatusDelivered, 1}, {StatusDelivered, 1}, {StatusFailed, 0}}
	for i, w := range want {
		if c := rec.Channels[i]; c.Status != w.status || c.Attempts != w.attempts {
			t.Errorf("channel %d: %+v, want %s after %d", i, c, w.status, w.attempts)
		}
	}
	if rec.Overall() != OverallPartial || down.calls.Load() != 5 {
		t.Errorf("overall %s, %d calls to the down receiver", rec.Overall(), down.calls.Load())
	}
	if len(slack) != 1 || !strings.Contains(slack[0]["text"].(string), "*Breakout*") || slack[0]["blocks"] == nil {
		t.Errorf("slack payload %v", slack)
	}
	if strings.Contains(rec.Channels[2].Target, "XXXX") {
		t.Error("the Slack token leaked into the status")
	}
}

func TestConcurrentDispatchersSendOnce(t *testing.T) {
	st := newStore(t)
	rx := &flaky{}
	srv := httptest.NewServer(rx)
	defer srv.Close()
	n := notification("n3", Target{Channel: ChannelWebhook, URL: srv.URL})
	ctx := context.Background()
	st.Create(ctx, n)
	var wg sync.WaitGroup
	var inProgress atomic.Int32
	for range 8 {
		d := &Dispatcher{Store: st, Sleep: noSleep, Senders: map[string]Sender{ChannelWebhook: &Webhook{Client: Guard{Allow: loopback}.Client(5 * time.Second), Secret: []byte("s")}}}
		wg.Go(func() {
			if err := d.Deliver(ctx, n.ID); errors.Is(err, ErrInProgress) {
				inProgress.Add(1)
			} else if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(rx.delivered) != 1 {
		t.Fatalf("delivered %d times", len(rx.delivered))
	}
	if err := st.Create(ctx, n); !errors.Is(err, ErrExists) {
		t.Fatalf("same id created twice: %v", err)
	}
}

func TestGuardRefusesInternalAddresses(t *testing.T) {
	g := Guard{}
	ctx := context.Background()
	for _, u := range []string{
		"http://127.0.0.1/", "http://127.1.2.3:8080/x", "http://[::1]/", "http://localhost:9000/hook",
		"http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://10.0.0.5/", "http://172.16.3.4/",
		"http://192.168.1.1/", "http://100.64.0.1/", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://[::]/",
		"http://224.0.0.1/", "http://metadata.google.internal/", "http://ensemble.day-trade.svc.cluster.local/",
		"http://kubernetes.default.svc/", "file:///etc/passwd", "gopher://example.com/", "http://user:pw@example.com/",
		"http:///nohost", "http://2130706433/", "http://[fe80::1%25eth0]/", "ftp://example.com",
	} {
		if err := g.CheckURL(ctx, u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	for _, ip := range []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "52.95.110.1"} {
		if err := g.CheckIP(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("%s refused: %v", ip, err)
		}
	}
	if err := (Guard{Allow: loopback}).CheckURL(ctx, "http://localhost:9000/"); err != nil {
		t.Errorf("allow-listed localhost refused: %v", err)
	}
}

// The check that matters happens at connect time, on the address DNS gave: a name that
// resolves to loopback is refused even when no one validated the URL first.
func TestGuardedClientRefusesAtConnectTime(t *testing.T) {
	rx := &flaky{}
	srv := httptest.NewServer(rx)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	w := &Webhook{Client: Guard{}.Client(5 * time.Second), Secret: []byte("s")}
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		err := w.Send(context.Background(), notification("x"), Target{Channel: ChannelWebhook, URL: u})
		if !errors.Is(err, ErrBlockedAddress) || !IsPermanent(err) {
			t.Errorf("%s: %v", u, err)
		}
	}
	// A redirect is not followed: it could point inside.
	redir := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/", http.StatusFound))
	defer redir.Close()
	w.Client = Guard{Allow: loopback}.Client(5 * time.Second)
	if err := w.Send(context.Background(), notification("x"), Target{URL: redir.URL}); !IsPermanent(err) {
		t.Errorf("redirect: %v", err)
	}
	if rx.calls.Load() != 0 {
		t.Fatalf("the receiver was reached %d times", rx.calls.Load())
	}
}

func discard() *slogLogger { return slogDiscard }

// smtpServer is a minimal RFC 5321 server for failure modes a real server will not produce on
// demand: reply maps a command verb to a list of replies used in turn (then "250 ok").
type smtpServer struct {
	ln       net.Listener
	mu       sync.Mutex
	reply    map[string][]string
	messages []string
}

func startSMTP(t *testing.T, reply map[string][]string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, reply: reply}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) next(verb string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.reply[verb]; len(r) > 0 {
		s.reply[verb] = r[1:]
		return r[0]
	}
	return ""
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(l string) { fmt.Fprintf(c, "%s\r\n", l) }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		if rep := s.next(verb); rep != "" {
			say(rep)
			continue
		}
		switch verb {
		case "EHLO":
			say("250-test")
			say("250 8BITMIME")
		case "DATA":
			say("354 go ahead")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			if rep := s.next("END"); rep != "" {
				say(rep)
				continue
			}
			s.mu.Lock()
			s.messages = append(s.messages, msg.String())
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestEmailRetriesA4xxAndGivesUpOnA5xx(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	srv := startSMTP(t, map[string][]string{"END": {"451 4.3.0 try again"}, "RCPT": {"", "", "550 5.1.1 no such user"}})
	d := &Dispatcher{Store: st, Sleep: noSleep, Senders: map[string]Sender{ChannelEmail: &Email{Addr: srv.ln.Addr().String(), From: "Day Trade <alerts@day-trade.test>"}}}
	n := notification("e1", Target{Channel: ChannelEmail, To: []string{"ops@example.com"}})
	n.Title = "決算: トヨタ"
	st.Create(ctx, n)
	d.Deliver(ctx, n.ID)
	rec, _ := st.Get(ctx, n.ID)
	if c := rec.Channels[0]; c.Status != StatusDelivered || c.Attempts != 2 || len(srv.messages) != 1 {
		t.Fatalf("%+v, %d messages", c, len(srv.messages))
	}
	if !strings.Contains(srv.messages[0], "Subject: =?utf-8?q?") || !strings.Contains(srv.messages[0], "Message-ID: <e1@") {
		t.Errorf("message:\n%s", srv.messages[0])
	}
	n2 := notification("e2", Target{Channel: ChannelEmail, To: []string{"nobody@example.com"}})
	st.Create(ctx, n2)
	d.Deliver(ctx, n2.ID)
	rec, _ = st.Get(ctx, n2.ID)
	if c := rec.Channels[0]; c.Status != StatusFailed || c.Attempts != 1 || !strings.Contains(c.LastError, "550") {
		t.Fatalf("%+v", c)
	}
}

// TestEmailToARealSMTPServer sends through aiosmtpd (Debian: python3-aiosmtpd), a real
// RFC 5321 implementation, into a Maildir, and reads the message back.
func TestEmailToARealSMTPServer(t *testing.T) {
	// Debian's package installs into the system interpreter, which may not be first on PATH.
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import aiosmtpd").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("aiosmtpd not installed (apt-get install python3-aiosmtpd)")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(py, "-m", "aiosmtpd", "-n", "-l", addr, "-c", "aiosmtpd.handlers.Mailbox", filepath.Join(dir, "Maildir"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("aiosmtpd did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := newStore(t)
	d := &Dispatcher{Store: st, Sleep: noSleep, Senders: map[string]Sender{ChannelEmail: &Email{Addr: addr, From: "alerts@day-trade.test"}}}
	n := notification("real1", Target{Channel: ChannelEmail, To: []string{"ops@example.com", "risk@example.com"}})
	n.Message = "日経平均が急落しました。\nポジションを確認してください。"
	ctx := context.Background()
	st.Create(ctx, n)
	if err := d.Deliver(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Get(ctx, n.ID)
	if rec.Channels[0].Status != StatusDelivered {
		t.Fatalf("%+v", rec.Channels[0])
	}
	files, _ := filepath.Glob(filepath.Join(dir, "Maildir", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("%d messages in the Maildir", len(files))
	}
	raw, _ := os.ReadFile(files[0])
	if !strings.Contains(string(raw), "X-Daytrade-Notification-Id: real1") || !strings.Contains(string(raw), "To: ops@example.com, risk@example.com") {
		t.Fatalf("message:\n%s", raw)
	}
}
