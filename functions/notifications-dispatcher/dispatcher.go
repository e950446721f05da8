package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/notify"
)

func newServer(rcv *events.Receiver) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/", rcv.HTTPHandler())
	return r
}

type handler struct {
	store    *notify.Store
	disp     *notify.Dispatcher
	defaults []notify.Target
	log      *slog.Logger
}

func register(rcv *events.Receiver, h handler) {
	rcv.Handle(events.TypeNotificationRequested, h.requested)
	rcv.Handle(events.TypeMLBatchCompleted, h.derived(func(id, src string, at time.Time, e cloudevents.Event) (notify.Notification, error) {
		var p events.MLBatchCompleted
		err := events.DecodeData(e, &p)
		return notify.FromBatchCompleted(id, src, at, p, h.defaults), err
	}))
	rcv.Handle(events.TypeMLAccuracyDegraded, h.derived(func(id, src string, at time.Time, e cloudevents.Event) (notify.Notification, error) {
		var p events.MLAccuracyDegraded
		err := events.DecodeData(e, &p)
		return notify.FromAccuracyDegraded(id, src, at, p, h.defaults), err
	}))
	rcv.Handle(events.TypeExecutionOrderFilled, h.derived(func(id, src string, at time.Time, e cloudevents.Event) (notify.Notification, error) {
		var p events.OrderFilled
		err := events.DecodeData(e, &p)
		return notify.FromOrderFilled(id, src, at, p, h.defaults), err
	}))
}

// requested delivers one channel of a notification stored by notifications-send, or, for a
// request from another producer, stores and delivers the notification it describes.
func (h handler) requested(ctx context.Context, e cloudevents.Event) error {
	var p events.NotificationRequested
	if err := events.DecodeData(e, &p); err != nil {
		return err
	}
	if id := p.Meta[notify.MetaNotificationID]; id != "" {
		i, err := strconv.Atoi(p.Meta[notify.MetaChannelIndex])
		if !notify.ValidID(id) || err != nil || i < 0 {
			return httpx.Errorf(httpx.CodeInvalid, "notification_id or channel_index malformed")
		}
		if _, err := h.store.Get(ctx, id); errors.Is(err, notify.ErrNotFound) {
			// The sender removed it after failing to queue every channel, or it expired.
			h.log.WarnContext(ctx, "notification requested for an unknown id; dropped", "id", id)
			return nil
		} else if err != nil {
			return httpx.Wrap(err, httpx.CodeUnavailable, "notification store unavailable")
		}
		return dispatchError(h.disp.DeliverTarget(ctx, id, i))
	}
	n, err := notify.FromRequested(notify.EventNotificationID(e.Source(), e.ID()), e.Source(), eventTime(e), p)
	if err != nil {
		return httpx.Wrap(err, httpx.CodeInvalid, "notification request: "+err.Error())
	}
	return h.deliver(ctx, n)
}

// derived turns a platform event into a notification to the default channels.
func (h handler) derived(build func(id, src string, at time.Time, e cloudevents.Event) (notify.Notification, error)) events.HandlerFunc {
	return func(ctx context.Context, e cloudevents.Event) error {
		n, err := build(notify.EventNotificationID(e.Source(), e.ID()), e.Source(), eventTime(e), e)
		if err != nil {
			return err
		}
		if len(n.Targets) == 0 {
			return nil
		}
		return h.deliver(ctx, n)
	}
}

func (h handler) deliver(ctx context.Context, n notify.Notification) error {
	if err := h.store.Create(ctx, n); err != nil && !errors.Is(err, notify.ErrExists) {
		return httpx.Wrap(err, httpx.CodeUnavailable, "notification store unavailable")
	}
	return dispatchError(h.disp.Deliver(ctx, n.ID))
}

// dispatchError maps the dispatcher's errors for the Broker: a permanent problem is poison,
// anything else (Redis down, another worker holding the channel, interrupted) is retried.
func dispatchError(err error) error {
	switch {
	case err == nil:
		return nil
	case notify.IsPermanent(err):
		return httpx.Wrap(err, httpx.CodeInvalid, "notification cannot be delivered")
	}
	return &httpx.Error{Code: httpx.CodeUnavailable, Message: "notification delivery interrupted", RetryAfter: 5 * time.Second, Err: err}
}

func eventTime(e cloudevents.Event) time.Time {
	if t := e.Time(); !t.IsZero() {
		return t.UTC()
	}
	return time.Now().UTC()
}
