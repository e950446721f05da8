// Command fn is a stand-in function for the local platform's tests: it follows the Knative
// runtime contract ($PORT, health endpoints, SIGTERM) and echoes what it was given.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// echoed are the environment variables the function reports back.
var echoed = []string{
	"PORT", "BIND_ADDR", "K_SERVICE", "K_CONFIGURATION", "K_REVISION", "POD_NAMESPACE",
	"REDIS_URL", "PLATFORM_MODE", "UPSTREAM_DIAL_ADDR", "GREETING", "OVERRIDE_ME",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("FN_EXIT") != "" { // a function that dies at start
		fmt.Fprintln(os.Stderr, "fn: exiting as FN_EXIT asks")
		os.Exit(3)
	}
	if d, err := time.ParseDuration(os.Getenv("FN_START_DELAY")); err == nil {
		time.Sleep(d) // a slow start, to widen the window for concurrent first requests
	}
	env := map[string]string{}
	for _, k := range echoed {
		env[k] = os.Getenv(k)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/liveness", func(w http.ResponseWriter, r *http.Request) {
		// As shared/runtime does: the platform accepts only its own child's pid.
		fmt.Fprintf(w, `{"status":"alive","pid":%d,"service":%q}`+"\n", os.Getpid(), os.Getenv("K_SERVICE"))
	})
	mux.HandleFunc("GET /health/readiness", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"status":"ready"}`)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // stay open: the client must see the first event before the end
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"service": os.Getenv("K_SERVICE"),
			"path":    r.URL.Path,
			"query":   r.URL.RawQuery,
			"host":    r.Host,
			"xff":     r.Header.Get("X-Forwarded-For"),
			"pid":     os.Getpid(),
			"env":     env,
		})
	})

	addr := net.JoinHostPort(os.Getenv("BIND_ADDR"), os.Getenv("PORT"))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "fn:", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}
