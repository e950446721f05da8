package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/robfig/cron/v3"

	"github.com/day-trade/platform/functions"
)

// pinger plays one Knative PingSource: on every due time of its schedule it sends one
// CloudEvent to the Broker ingress. In the cluster a PingSource's events have type
// dev.knative.sources.ping and a second Trigger maps them to the catalog type; here the tick
// is sent as the catalog type itself (Schedule.Type), so the catalog's own Triggers deliver
// it and no ping-only Trigger is needed. Its source is the PingSource's, and its id is
// derived from the schedule and the due time, so a tick sent twice (a retry after a lost
// answer, a platform restarted within the same minute) is one event to the receivers'
// (source, id) dedup.
type pinger struct {
	sched  functions.Schedule
	spec   cron.Schedule
	source string
	log    *slog.Logger
	// send delivers one tick to the Broker; it returns once the Broker accepted it.
	send func(ctx context.Context, e cloudevents.Event) error
	// now and after are the clock; tests drive them.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

// PingSourceSource is the CloudEvent source of PingSource name in namespace ns, as Knative
// sets it (and as knative/manifests names it in the ping Triggers).
func PingSourceSource(ns, name string) string {
	return fmt.Sprintf("/apis/v1/namespaces/%s/pingsources/%s", ns, name)
}

// parseSchedule reads s's cron in s's time zone. Besides five fields it accepts robfig/cron's
// descriptors ("@every 1s", "@hourly"); the manifests accept only five fields, so only
// tests use them.
func parseSchedule(s functions.Schedule) (cron.Schedule, error) {
	expr := s.Cron
	if s.Timezone != "" {
		expr = "CRON_TZ=" + s.Timezone + " " + expr
	}
	spec, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("local: schedule %s: %w", s.Name, err)
	}
	return spec, nil
}

func newPinger(s functions.Schedule, ns string, log *slog.Logger, send func(context.Context, cloudevents.Event) error) (*pinger, error) {
	spec, err := parseSchedule(s)
	if err != nil {
		return nil, err
	}
	if !json.Valid([]byte(s.Data)) && s.Data != "" {
		return nil, fmt.Errorf("local: schedule %s: data is not JSON", s.Name)
	}
	return &pinger{
		sched: s, spec: spec, source: PingSourceSource(ns, s.Name),
		log: log.With("component", "ping", "schedule", s.Name), send: send,
		now: time.Now, after: time.After,
	}, nil
}

// tick is the event for due time due: the same id for the same due time.
func (p *pinger) tick(due time.Time) cloudevents.Event {
	e := cloudevents.NewEvent()
	e.SetID(p.sched.Name + "-" + strconv.FormatInt(due.Unix(), 10))
	e.SetType(p.sched.Type)
	e.SetSource(p.source)
	e.SetTime(due)
	data := p.sched.Data
	if data == "" {
		data = "{}"
	}
	_ = e.SetData(cloudevents.ApplicationJSON, json.RawMessage(data))
	return e
}

// run sends a tick at every due time until ctx ends. Like Knative's PingSource it does not
// make up due times that passed while it was not running (or while the clock jumped): after
// a stall it sends the latest due time only.
func (p *pinger) run(ctx context.Context) {
	next := p.spec.Next(p.now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.after(next.Sub(p.now())):
		}
		if now := p.now(); now.Before(next) {
			continue // woke early (a coarse timer); wait out the rest
		}
		following := p.spec.Next(next)
		for now := p.now(); !following.After(now); following = p.spec.Next(following) {
			next = following // skip to the latest due time that passed
		}
		p.fire(ctx, next, following)
		next = following
	}
}

// fire sends the tick for due, retrying with backoff until the Broker accepts it or the next
// due time comes (a tick that late is superseded by the next one).
func (p *pinger) fire(ctx context.Context, due, next time.Time) {
	e := p.tick(due)
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.send(ctx, e)
		if err == nil {
			p.log.Debug("tick sent", "ce_id", e.ID(), "due", due)
			return
		}
		wait := min(delay, 5*time.Second)
		if ctx.Err() != nil || !p.now().Add(wait).Before(next) {
			p.log.Warn("tick not delivered to the broker; the next one supersedes it", "ce_id", e.ID(), "attempts", attempt, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-p.after(wait):
		}
		delay *= 2
	}
}

// brokerSender sends events to the Broker ingress at url in binary mode.
func brokerSender(url string) (func(context.Context, cloudevents.Event) error, error) {
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(url))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, e cloudevents.Event) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if res := c.Send(cloudevents.WithEncodingBinary(ctx), e); !cloudevents.IsACK(res) {
			return fmt.Errorf("broker refused tick %s: %w", e.ID(), res)
		}
		return nil
	}, nil
}

// startPingers runs a pinger per schedule some catalog function subscribes to, as the
// manifests create a PingSource only for those.
func (p *Platform) startPingers() error {
	if len(p.opts.Schedules) == 0 {
		return nil
	}
	if p.broker == nil {
		return fmt.Errorf("local: schedules need the broker")
	}
	send, err := brokerSender(p.broker.url)
	if err != nil {
		return err
	}
	for _, s := range p.opts.Schedules {
		subscribed := slices.ContainsFunc(p.opts.Functions, func(f functions.Function) bool {
			return slices.ContainsFunc(f.Events, func(e functions.Subscription) bool { return e.Type == s.Type })
		})
		if !subscribed {
			p.log.Info("schedule has no subscriber; not ticking", "schedule", s.Name, "type", s.Type)
			continue
		}
		pg, err := newPinger(s, p.opts.Namespace, p.log, send)
		if err != nil {
			return err
		}
		p.spawn(func() { pg.run(p.ctx) })
		p.log.Info("ping source up", "schedule", s.Name, "cron", s.Cron, "timezone", s.Timezone, "type", s.Type)
	}
	return nil
}
