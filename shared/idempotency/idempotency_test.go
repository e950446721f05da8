package idempotency

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func newStore(t *testing.T, o Options) (*Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return NewStore(rdb, store.NewKeys("exec"), o), srv
}

func TestStoreStates(t *testing.T) {
	s, _ := newStore(t, Options{LockTTL: 200 * time.Millisecond})
	ctx := context.Background()
	b, err := s.Begin(ctx, "t1", "k", "fp1")
	if err != nil || b.State != Acquired {
		t.Fatalf("%+v %v", b, err)
	}
	if b2, _ := s.Begin(ctx, "t1", "k", "fp1"); b2.State != InFlight {
		t.Fatalf("while held: %v", b2.State)
	}
	if b2, _ := s.Begin(ctx, "t1", "k", "fp2"); b2.State != Mismatch {
		t.Fatalf("other fingerprint: %v", b2.State)
	}
	if b2, _ := s.Begin(ctx, "t2", "k", "fp2"); b2.State != Acquired {
		t.Fatalf("other scope: %v", b2.State)
	}
	// The lock expires on its own; the late Complete of its holder is refused.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b3, err := s.Begin(ctx, "t1", "k", "fp1")
		if err != nil {
			t.Fatal(err)
		}
		if b3.State == Acquired {
			if err := s.Complete(ctx, b.Lease, Response{Status: 201}); !errors.Is(err, ErrLost) {
				t.Fatalf("stale lease completed: %v", err)
			}
			if err := s.Complete(ctx, b3.Lease, Response{Status: 201, Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	done, _ := s.Begin(ctx, "t1", "k", "fp1")
	if done.State != Done || done.Response.Status != 201 || string(done.Response.Body) != "x" {
		t.Fatalf("%+v", done)
	}
}

func TestMiddlewareReleasesOn5xxAndFailsClosed(t *testing.T) {
	s, srv := newStore(t, Options{})
	var calls atomic.Int64
	status := http.StatusServiceUnavailable
	h := s.Middleware(slog.New(slog.NewTextHandler(io.Discard, nil)), func(*http.Request) (string, error) { return "t", nil }, 0)(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			req, _ := FromContext(r.Context())
			body, _ := io.ReadAll(r.Body)
			if string(body) != string(req.Body) {
				t.Errorf("body not passed on")
			}
			w.WriteHeader(status)
		}))
	do := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/x", strings.NewReader(`{}`))
		r.Header.Set(Header, `"quoted-key"`)
		h.ServeHTTP(w, r)
		return w
	}
	if w := do(); w.Code != 503 {
		t.Fatal(w.Code)
	}
	status = http.StatusCreated
	if w := do(); w.Code != 201 || calls.Load() != 2 {
		t.Fatalf("after a 5xx the retry runs again: %d, %d calls", w.Code, calls.Load())
	}
	if w := do(); w.Code != 201 || w.Header().Get(ReplayedHeader) != "true" || calls.Load() != 2 {
		t.Fatalf("replay: %d %d", w.Code, calls.Load())
	}
	srv.Kill()
	w := do()
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || calls.Load() != 2 {
		t.Fatalf("Redis down: %d, %d calls", w.Code, calls.Load())
	}
}

func FuzzValidKey(f *testing.F) {
	f.Add("abc")
	f.Add("")
	f.Add("\x00")
	f.Fuzz(func(t *testing.T, k string) {
		if ValidKey(k) && (len(k) == 0 || len(k) > MaxKeyLength) {
			t.Fatal(k)
		}
	})
}
