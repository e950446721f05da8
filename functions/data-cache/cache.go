package main

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/marketcache"
)

func newServer(log *slog.Logger, cache *marketcache.Cache) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/data/cache", handleStats(log, cache))
	r.Method(http.MethodDelete, "/api/v1/data/cache", handleClear(log, cache))
	return r
}

func handleStats(log *slog.Logger, cache *marketcache.Cache) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := cache.Stats(r.Context())
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		_ = httpx.Encode(w, http.StatusOK, s)
	})
}

type clearResponse struct {
	Pattern string `json:"pattern"`
	Deleted int64  `json:"deleted"`
}

func handleClear(log *slog.Logger, cache *marketcache.Cache) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pattern := r.URL.Query().Get("pattern")
		if pattern == "" {
			pattern = "*"
		}
		n, err := cache.Clear(r.Context(), pattern)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		_ = httpx.Encode(w, http.StatusOK, clearResponse{Pattern: pattern, Deleted: n})
	})
}
