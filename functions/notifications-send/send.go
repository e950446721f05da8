package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/notify"
)

const (
	maxBody = 64 << 10
	// inlineTimeout bounds an inline dispatch: the longest retry run of a critical notification.
	inlineTimeout = 3 * time.Minute
)

// Publisher is the part of events.Publisher the handler uses.
type Publisher interface {
	Publish(ctx context.Context, typ, source, subject string, data any) (string, error)
}

type sender struct {
	cfg    notify.Config
	store  *notify.Store
	pub    Publisher          // nil: dispatch inline
	inline *notify.Dispatcher // used when pub is nil
	log    *slog.Logger
	ident  *batch.Identity // whose notification it is
	wg     sync.WaitGroup  // inline dispatches in flight
}

// wait lets inline dispatches finish (or ctx end) before the process exits.
func (s *sender) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func newServer(log *slog.Logger, s *sender) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/notifications/send", handleSend(log, s))
	return r
}

// channelSpec is a channel name ("slack") or an object ({"type":"webhook","url":"https://..."}).
type channelSpec notify.Target

func (c *channelSpec) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`"`)) {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		*c = channelSpec{Channel: name}
		return nil
	}
	var t notify.Target
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return fmt.Errorf("a channel is a name or an object {type, url, to}: %w", err)
	}
	*c = channelSpec(t)
	return nil
}

type sendRequest struct {
	Type     string            `json:"type"`
	Message  string            `json:"message"`
	Title    string            `json:"title,omitempty"`
	Channels []channelSpec     `json:"channels"`
	Priority string            `json:"priority,omitempty"`
	Ref      string            `json:"ref,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
}

// parseSend validates a request into a notification (without id), naming every bad field.
func parseSend(ctx context.Context, req sendRequest, c notify.Config) (notify.Notification, error) {
	var fields []httpx.FieldError
	add := func(f, reason string) { fields = append(fields, httpx.FieldError{Field: f, Reason: reason}) }
	n := notify.Notification{Type: req.Type, Message: req.Message, Title: req.Title, Ref: req.Ref, Meta: req.Meta}
	if !notify.ValidType(req.Type) {
		add("type", "required: lower-case letters, digits, '.', '_' or '-', at most 64, e.g. \"alert\"")
	}
	switch {
	case strings.TrimSpace(req.Message) == "":
		add("message", "required")
	case len(req.Message) > notify.MaxMessageLen || !utf8.ValidString(req.Message):
		add("message", fmt.Sprintf("must be valid UTF-8 of at most %d bytes", notify.MaxMessageLen))
	}
	if len(req.Title) > notify.MaxTitleLen || !utf8.ValidString(req.Title) {
		add("title", fmt.Sprintf("must be valid UTF-8 of at most %d bytes", notify.MaxTitleLen))
	}
	if len(req.Ref) > 200 {
		add("ref", "at most 200 bytes")
	}
	if len(req.Meta) > notify.MaxMeta {
		add("meta", fmt.Sprintf("at most %d entries", notify.MaxMeta))
	}
	for k, v := range req.Meta {
		if k == "" || len(k) > 64 || len(v) > 500 {
			add("meta", "keys 1..64 bytes, values at most 500 bytes")
			break
		}
	}
	var err error
	if n.Priority, err = notify.ParsePriority(req.Priority); err != nil {
		add("priority", err.Error())
	}
	switch {
	case len(req.Channels) == 0:
		add("channels", "at least one channel: "+strings.Join(notify.Channels, ", "))
	case len(req.Channels) > notify.MaxTargets:
		add("channels", fmt.Sprintf("at most %d channels", notify.MaxTargets))
	default:
		for i, ch := range req.Channels {
			t := notify.Target(ch)
			if f, reason := c.CheckTarget(ctx, t); f != "" {
				add(fmt.Sprintf("channels[%d].%s", i, f), reason)
			}
			n.Targets = append(n.Targets, t)
		}
	}
	if len(fields) > 0 {
		return n, httpx.Invalid("invalid notification", fields...)
	}
	return n, nil
}

type sendResponse struct {
	NotificationID string                 `json:"notification_id"`
	Status         string                 `json:"status"`
	Dispatch       string                 `json:"dispatch"` // "broker" or "inline"
	Channels       []notify.ChannelStatus `json:"channels"`
}

func handleSend(log *slog.Logger, s *sender) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := s.ident.Tenant(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		req, err := httpx.Decode[sendRequest](w, r, maxBody)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		n, err := parseSend(r.Context(), req, s.cfg)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		n.ID = "ntf_" + strings.ReplaceAll(uuid.NewString(), "-", "")
		n.Source, n.Tenant, n.CreatedAt = "api", tenant, time.Now().UTC()
		if err := s.store.Create(r.Context(), n); err != nil {
			httpx.WriteError(w, r, log, httpx.Wrap(err, httpx.CodeUnavailable, "notification store unavailable"))
			return
		}
		dispatch := "inline"
		if s.pub != nil {
			dispatch = "broker"
			for _, ev := range notify.RequestedEvents(n, tenant) {
				if _, err := s.pub.Publish(r.Context(), events.TypeNotificationRequested, events.SourceNotificationsSend, n.ID, ev); err != nil {
					_ = s.store.Delete(context.WithoutCancel(r.Context()), n.ID)
					// The caller's request was fine: the broker's trouble is ours, never a 4xx.
					switch httpx.ErrorCode(err) {
					case httpx.CodeUnavailable, httpx.CodeRateLimited:
						err = &httpx.Error{Code: httpx.CodeUnavailable, Message: "event broker unavailable", RetryAfter: 2 * time.Second, Err: err}
					default:
						err = httpx.Wrap(err, httpx.CodeUpstream, "event broker refused the notification")
					}
					httpx.WriteError(w, r, log, err)
					return
				}
			}
		} else {
			// Detached from the request: the caller has its answer; delivery goes on.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), inlineTimeout)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer cancel()
				if err := s.inline.Deliver(ctx, n.ID); err != nil {
					log.Error("inline notification dispatch", "id", n.ID, "err", err)
				}
			}()
		}
		rec, err := s.store.Get(r.Context(), n.ID)
		if err != nil {
			httpx.WriteError(w, r, log, httpx.Wrap(err, httpx.CodeUnavailable, "notification store unavailable"))
			return
		}
		w.Header().Set("Location", "/api/v1/notifications/"+n.ID)
		_ = httpx.Encode(w, http.StatusAccepted, sendResponse{NotificationID: n.ID, Status: rec.Overall(), Dispatch: dispatch, Channels: rec.Channels})
	})
}
