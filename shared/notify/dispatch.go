package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"
)

// Policy is the retry policy of one channel delivery: attempts by priority, and exponential
// backoff with full jitter between them (AWS's "full jitter": a wait drawn from [0, min(max,
// base·2^n)]), so that many failing deliveries do not retry in step.
type Policy struct {
	Attempts map[Priority]int
	Base     time.Duration
	Max      time.Duration
	// AttemptTimeout bounds one attempt. Default 10s.
	AttemptTimeout time.Duration
}

// DefaultPolicy tries harder for more urgent notifications.
func DefaultPolicy() Policy {
	return Policy{
		Attempts: map[Priority]int{PriorityLow: 3, PriorityNormal: 4, PriorityHigh: 5, PriorityCritical: 6},
		Base:     250 * time.Millisecond, Max: 10 * time.Second, AttemptTimeout: 10 * time.Second,
	}
}

func (p Policy) attempts(pr Priority) int {
	if n := p.Attempts[pr]; n > 0 {
		return n
	}
	return 4
}

func (p Policy) backoff(attempt int) time.Duration {
	d := p.Base << min(attempt, 20)
	if d <= 0 || d > p.Max {
		d = p.Max
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// ErrInProgress means another worker holds the channel's delivery lease; the caller should
// try again later (a Broker redelivery does).
var ErrInProgress = errors.New("notify: delivery in progress elsewhere")

// Dispatcher delivers stored notifications. Retry lives here and nowhere else: senders try
// once, and the Dispatcher retries each channel on its own with backoff, records every
// attempt, and never sends a channel again once it is delivered (the deduplication that makes
// redelivered events and repeated calls safe).
type Dispatcher struct {
	Store   *Store
	Senders map[string]Sender
	Policy  Policy
	// Lease bounds how long one worker may hold a channel; it must exceed a whole retry run.
	// Default 5m.
	Lease time.Duration
	Log   *slog.Logger
	// Sleep waits between attempts and returns early with ctx's error. Default a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dispatcher) sleep(ctx context.Context, dur time.Duration) error {
	if d.Sleep != nil {
		return d.Sleep(ctx, dur)
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Deliver delivers every channel of notification id that is not finished, concurrently, and
// returns once each is delivered or given up. The error is non-nil only when the work could
// not be recorded or was interrupted (Redis down, ctx ended, a lease held elsewhere): the
// caller should retry then, and channels already delivered will not be sent again.
func (d *Dispatcher) Deliver(ctx context.Context, id string) error {
	rec, err := d.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range rec.Notification.Targets {
		if rec.Channels[i].Terminal() {
			continue
		}
		wg.Go(func() {
			if err := d.DeliverTarget(ctx, id, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// DeliverTarget delivers channel i of notification id, with retries.
func (d *Dispatcher) DeliverTarget(ctx context.Context, id string, i int) error {
	lease := d.Lease
	if lease <= 0 {
		lease = 5 * time.Minute
	}
	ok, token, err := d.Store.Acquire(ctx, id, i, lease)
	if err != nil {
		return err
	}
	if !ok {
		return ErrInProgress
	}
	defer d.Store.Release(context.WithoutCancel(ctx), id, i, token)
	// Read after taking the lease: a worker that finished just before us has recorded it.
	rec, err := d.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if i < 0 || i >= len(rec.Channels) {
		return &Permanent{Err: fmt.Errorf("notify: notification %s has no channel %d", id, i)}
	}
	n, cs := rec.Notification, rec.Channels[i]
	if cs.Terminal() {
		return nil
	}
	target := n.Targets[i]
	sender, ok := d.Senders[target.Channel]
	if !ok {
		cs.Status, cs.LastError, cs.UpdatedAt = StatusFailed, "channel not configured on this dispatcher", d.now()
		return d.Store.SetStatus(ctx, id, cs)
	}
	policy := d.Policy
	if policy.Attempts == nil {
		policy = DefaultPolicy()
	}
	timeout := policy.AttemptTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	max := policy.attempts(n.Priority)
	for cs.Attempts < max {
		cs.Attempts++
		cs.Status, cs.UpdatedAt = StatusDelivering, d.now()
		if err := d.Store.SetStatus(ctx, id, cs); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := sender.Send(actx, n, target)
		cancel()
		cs.UpdatedAt = d.now()
		if err == nil {
			at := cs.UpdatedAt
			cs.Status, cs.LastError, cs.DeliveredAt = StatusDelivered, "", &at
			d.log().InfoContext(ctx, "notification delivered", "id", id, "channel", target.Channel, "attempts", cs.Attempts)
			return d.Store.SetStatus(context.WithoutCancel(ctx), id, cs)
		}
		cs.LastError = describe(err)
		if IsPermanent(err) || cs.Attempts >= max {
			cs.Status = StatusFailed
			d.log().WarnContext(ctx, "notification channel failed", "id", id, "channel", target.Channel, "attempts", cs.Attempts, "err", cs.LastError)
			return d.Store.SetStatus(context.WithoutCancel(ctx), id, cs)
		}
		cs.Status = StatusRetrying
		if err := d.Store.SetStatus(ctx, id, cs); err != nil {
			return err
		}
		if err := d.sleep(ctx, policy.backoff(cs.Attempts-1)); err != nil {
			return err
		}
	}
	cs.Status, cs.UpdatedAt = StatusFailed, d.now()
	return d.Store.SetStatus(ctx, id, cs)
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

// describe is an error as the status may show it: a *url.Error names the URL, which for a
// Slack webhook is a secret, so only its cause is kept.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
