package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
)

// Sender re-sends an event as it is (events.Publisher.Send).
type Sender interface {
	Send(ctx context.Context, e cloudevents.Event) error
}

// maxEventBytes bounds a dead-lettered event, as the Receiver bounds events elsewhere.
const maxEventBytes = 1 << 20

func newServer(log *slog.Logger, st *letterStore, pub Sender, id *batch.Identity) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	// The sink: whatever type failed elsewhere arrives here, so it is not an events.Receiver
	// (which dispatches by type and would also dedup a second failure of a replayed event
	// away); recording a letter is an idempotent upsert instead.
	r.Method(http.MethodPost, "/", handleDeadLetter(log, st))
	r.Group(func(r chi.Router) {
		r.Use(id.Require(functions.RoleAdmin))
		r.Method(http.MethodGet, "/api/v1/events/dead-letters", handleList(log, st))
		r.Method(http.MethodPost, "/api/v1/events/dead-letters/{id}/replay", handleReplay(log, st, pub))
	})
	return r
}

func handleDeadLetter(log *slog.Logger, st *letterStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				http.Error(w, "event too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		e, err := parseEvent(r.Context(), r.Header, body)
		if err != nil {
			http.Error(w, "malformed CloudEvent: "+err.Error(), http.StatusBadRequest)
			return
		}
		id, err := st.put(r.Context(), *e)
		if err != nil {
			log.ErrorContext(r.Context(), "cannot park dead letter; the Broker will retry", "ce_id", e.ID(), "err", err)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "dead-letter store unavailable", http.StatusServiceUnavailable)
			return
		}
		log.WarnContext(r.Context(), "dead letter parked", "letter", id, "ce_id", e.ID(), "ce_type", e.Type(),
			"ce_source", e.Source(), "error_code", e.Extensions()[extErrorCode], "error_dest", e.Extensions()[extErrorDest])
		w.WriteHeader(http.StatusOK)
	})
}

// parseEvent reads a binary or structured CloudEvent; a message the SDK panics on is malformed.
func parseEvent(ctx context.Context, header http.Header, body []byte) (e *cloudevents.Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, err = nil, fmt.Errorf("cannot parse: %v", p)
		}
	}()
	if e, err = binding.ToEvent(ctx, cehttp.NewMessage(header.Clone(), io.NopCloser(bytes.NewReader(body)))); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

type listResponse struct {
	DeadLetters []Letter `json:"dead_letters"`
	Count       int      `json:"count"`
}

func handleList(log *slog.Logger, st *letterStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 500 {
				httpx.WriteError(w, r, log, httpx.Invalid("invalid request", httpx.FieldError{Field: "limit", Reason: "must be an integer from 1 to 500"}))
				return
			}
			limit = n
		}
		ls, err := st.list(r.Context(), limit)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		_ = httpx.Encode(w, http.StatusOK, listResponse{DeadLetters: ls, Count: len(ls)})
	})
}

var letterIDRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

type replayResponse struct {
	ID      string `json:"id"`
	EventID string `json:"event_id"`
	Replays int64  `json:"replays"`
}

// handleReplay sends a parked event back to the Broker unchanged: same id and source, the
// error attributes removed. Subscribers that had processed it answer it as a duplicate (their
// effects stay exactly once); the one that failed gets it again. An event its subscriber
// rejected as poison is rejected again while its failed mark lives (24h): replay is for
// events whose retries ran out during an outage.
func handleReplay(log *slog.Logger, st *letterStore, pub Sender) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if !letterIDRE.MatchString(id) {
			httpx.WriteError(w, r, log, httpx.Errorf(httpx.CodeNotFound, "no dead letter %q", id))
			return
		}
		l, err := st.get(r.Context(), id)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		var e cloudevents.Event
		if err := json.Unmarshal(l.Event, &e); err != nil {
			httpx.WriteError(w, r, log, httpx.Wrap(err, httpx.CodeInternal, "corrupt dead letter"))
			return
		}
		for _, k := range []string{extErrorDest, extErrorCode, extErrorData} {
			e.SetExtension(k, nil)
		}
		if err := pub.Send(r.Context(), e); err != nil {
			he := httpx.AsError(err)
			if !he.Code.Retryable() && he.Code != httpx.CodeInvalid {
				he = httpx.Wrap(err, httpx.CodeUnavailable, "the Broker refused the replay")
			}
			httpx.WriteError(w, r, log, he)
			return
		}
		if err := st.replayed(r.Context(), id); err != nil {
			log.WarnContext(r.Context(), "replay sent but not counted", "letter", id, "err", err)
		}
		log.InfoContext(r.Context(), "dead letter replayed", "letter", id, "ce_id", l.EventID, "ce_type", l.Type)
		_ = httpx.Encode(w, http.StatusAccepted, replayResponse{ID: id, EventID: l.EventID, Replays: l.Replays + 1})
	})
}
