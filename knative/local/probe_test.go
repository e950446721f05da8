package local

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProbeAcceptsOnlyItsOwnChild(t *testing.T) {
	t.Parallel()
	const child = 4242
	tests := map[string]struct {
		status int
		body   string
		live   bool
		taken  bool
	}{
		"its own pid":           {status: 200, body: fmt.Sprintf(`{"status":"alive","pid":%d,"service":"echo"}`, child), live: true},
		"another pid":           {status: 200, body: `{"status":"alive","pid":17,"service":"other"}`, taken: true},
		"no pid (not runtime)":  {status: 200, body: `{"status":"alive"}`, live: true},
		"empty body":            {status: 200, body: "", live: true},
		"not json":              {status: 200, body: "ok", live: true},
		"not live":              {status: 503, body: fmt.Sprintf(`{"pid":%d}`, child)},
		"not live, another pid": {status: 503, body: `{"pid":17}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/health/liveness" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			live, err := probe(t.Context(), srv.URL+"/health/liveness", child)
			if live != tc.live || errors.Is(err, errPortTaken) != tc.taken {
				t.Errorf("probe = %v, %v; want live %v, port taken %v", live, err, tc.live, tc.taken)
			}
			if !tc.taken && err != nil {
				t.Errorf("unexpected error %v", err)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL + "/health/liveness"
		srv.Close()
		if live, err := probe(t.Context(), url, child); live || err != nil {
			t.Errorf("probe of a closed port = %v, %v; want false, nil", live, err)
		}
	})
}
