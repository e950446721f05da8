package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch returns a channel that yields the job now and then after every change, in order,
// and is closed once the job reaches a terminal status, expires, or ctx is done. It fails
// with ErrNotFound (as Get) before any value is sent. The consumer must keep reading or
// cancel ctx; an SSE handler does both.
func (s *Store) Watch(ctx context.Context, tenant, id string) (<-chan Job, error) {
	if !validID.MatchString(id) {
		return nil, ErrNotFound
	}
	// Subscribe before the initial read so that no change falls between the two; a change
	// seen by both is dropped by its version.
	ps := s.rdb.Subscribe(ctx, s.channel(id))
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, unavailable(err)
	}
	j, err := s.Get(ctx, tenant, id)
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	out := make(chan Job, 1)
	go s.watch(ctx, ps, tenant, id, j, out)
	return out, nil
}

func (s *Store) watch(ctx context.Context, ps *redis.PubSub, tenant, id string, j Job, out chan<- Job) {
	defer close(out)
	defer ps.Close()
	send := func(j Job) bool {
		select {
		case out <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send(j) || j.Status.Terminal() {
		return
	}
	last := j.Version
	msgs := ps.Channel()
	idle := time.NewTimer(s.opts.WatchResync)
	defer idle.Stop()
	for {
		var next Job
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			var fields map[string]string
			if json.Unmarshal([]byte(m.Payload), &fields) != nil {
				continue
			}
			j, err := fromMap(fields)
			if err != nil || j.Tenant != tenant {
				continue
			}
			next = j
		case <-idle.C:
			j, err := s.Get(ctx, tenant, id)
			switch {
			case errors.Is(err, ErrNotFound):
				return // expired or deleted
			case err != nil:
				idle.Reset(s.opts.WatchResync)
				continue
			}
			next = j
		}
		idle.Reset(s.opts.WatchResync)
		if next.Version <= last {
			continue
		}
		last = next.Version
		if !send(next) || next.Status.Terminal() {
			return
		}
	}
}
