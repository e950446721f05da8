package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// Status of a schedule.
const (
	StatusActive    = "active"
	StatusCancelled = "cancelled"
)

// Schedule is one tenant's recurring workflow, as stored and as served.
type Schedule struct {
	ID       string          `json:"id"`
	Tenant   string          `json:"tenant"`
	Workflow string          `json:"workflow"`
	Expr     string          `json:"schedule"`
	Config   json.RawMessage `json:"config,omitempty"`
	Status   string          `json:"status"`
	// FirstJobID is the job of the first due run, created (queued) with the schedule.
	FirstJobID  string    `json:"job_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
}

// Spec parses the schedule's expression (stored ones were validated when created).
func (s Schedule) Spec() (Spec, error) { return Parse("schedule", s.Expr) }

// RunID is the job id of the schedule's run due at t: the same for every replica and every
// tick, which is what makes a run start once.
func RunID(scheduleID string, due time.Time) string {
	return fmt.Sprintf("run.%s.%d", scheduleID, due.Unix())
}

// ErrNotFound is an unknown schedule or another tenant's; the two look the same on purpose.
var ErrNotFound = &httpx.Error{Code: httpx.CodeNotFound, Message: "schedule not found"}

var idRE = regexp.MustCompile(`^sch_[0-9a-f]{32}$`)

// Store keeps schedules in Redis: one JSON string per schedule, a set of ids per tenant and
// a set of the active ones, which the scheduler reads on every tick.
type Store struct {
	rdb       redis.UniversalClient
	keys      store.Keys
	perTenant int
	now       func() time.Time
}

// NewStore returns a Store in keys' space allowing perTenant schedules per tenant (active or
// cancelled, until deleted by expiry); now is the clock (nil: time.Now).
func NewStore(rdb redis.UniversalClient, keys store.Keys, perTenant int, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{rdb: rdb, keys: keys, perTenant: perTenant, now: now}
}

func (s *Store) key(id string) string      { return s.keys.Key("sched", id) }
func (s *Store) tenantKey(t string) string { return s.keys.Key("sched-tenant", t) }
func (s *Store) activeKey() string         { return s.keys.Key("sched-active") }
func unavailable(err error, op string) error {
	return httpx.Wrap(err, httpx.CodeUnavailable, "schedule store unavailable: "+op)
}

// NewID returns a fresh schedule id.
func NewID() string { return "sch_" + strings.ReplaceAll(uuid.NewString(), "-", "") }

// Create stores sc as active. sc.ID, Tenant, Workflow and Expr must be set.
func (s *Store) Create(ctx context.Context, sc Schedule) (Schedule, error) {
	n, err := s.rdb.SCard(ctx, s.tenantKey(sc.Tenant)).Result()
	if err != nil {
		return Schedule{}, unavailable(err, "count")
	}
	if int(n) >= s.perTenant {
		return Schedule{}, httpx.Errorf(httpx.CodeUnprocessable, "at most %d schedules per tenant: cancel one first", s.perTenant)
	}
	sc.Status = StatusActive
	if sc.CreatedAt.IsZero() {
		sc.CreatedAt = s.now().UTC()
	}
	b, err := json.Marshal(sc)
	if err != nil {
		return Schedule{}, err
	}
	ok, err := s.rdb.SetNX(ctx, s.key(sc.ID), b, 0).Result()
	if err != nil {
		return Schedule{}, unavailable(err, "create")
	}
	if !ok {
		return Schedule{}, httpx.Errorf(httpx.CodeConflict, "schedule %s exists", sc.ID)
	}
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, s.tenantKey(sc.Tenant), sc.ID)
		p.SAdd(ctx, s.activeKey(), sc.ID)
		return nil
	}); err != nil {
		return Schedule{}, unavailable(err, "index")
	}
	return sc, nil
}

func (s *Store) load(ctx context.Context, id string) (Schedule, error) {
	b, err := s.rdb.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Schedule{}, ErrNotFound
	}
	if err != nil {
		return Schedule{}, unavailable(err, "get")
	}
	var sc Schedule
	if err := json.Unmarshal(b, &sc); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", id, err)
	}
	return sc, nil
}

// Get returns the tenant's schedule id.
func (s *Store) Get(ctx context.Context, tenant, id string) (Schedule, error) {
	if !idRE.MatchString(id) {
		return Schedule{}, ErrNotFound
	}
	sc, err := s.load(ctx, id)
	if err != nil {
		return Schedule{}, err
	}
	if sc.Tenant != tenant {
		return Schedule{}, ErrNotFound
	}
	return sc, nil
}

// List returns the tenant's schedules, oldest first.
func (s *Store) List(ctx context.Context, tenant string) ([]Schedule, error) {
	ids, err := s.rdb.SMembers(ctx, s.tenantKey(tenant)).Result()
	if err != nil {
		return nil, unavailable(err, "list")
	}
	out, err := s.loadAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, sc := range out {
		if sc.Tenant == tenant {
			kept = append(kept, sc)
		}
	}
	return kept, nil
}

// Active returns every tenant's active schedules, oldest first.
func (s *Store) Active(ctx context.Context) ([]Schedule, error) {
	ids, err := s.rdb.SMembers(ctx, s.activeKey()).Result()
	if err != nil {
		return nil, unavailable(err, "active")
	}
	out, err := s.loadAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	kept := out[:0]
	for _, sc := range out {
		if sc.Status == StatusActive {
			kept = append(kept, sc)
		}
	}
	return kept, nil
}

func (s *Store) loadAll(ctx context.Context, ids []string) ([]Schedule, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, unavailable(err, "load")
	}
	var out []Schedule
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // deleted meanwhile
		}
		var sc Schedule
		if err := json.Unmarshal([]byte(str), &sc); err != nil {
			continue
		}
		out = append(out, sc)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Cancel stops the tenant's schedule: no run is started for it after this returns (a run
// already started finishes). Cancelling twice is not an error.
func (s *Store) Cancel(ctx context.Context, tenant, id string) (Schedule, error) {
	if !idRE.MatchString(id) {
		return Schedule{}, ErrNotFound
	}
	var out Schedule
	// Optimistic: the write applies only if nobody changed the record since it was read.
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, s.key(id)).Bytes()
		if errors.Is(err, redis.Nil) {
			return ErrNotFound
		}
		if err != nil {
			return unavailable(err, "cancel")
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("schedule %s: %w", id, err)
		}
		if out.Tenant != tenant {
			return ErrNotFound
		}
		if out.Status != StatusCancelled {
			out.Status, out.CancelledAt = StatusCancelled, s.now().UTC()
		}
		nb, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, s.key(id), nb, 0)
			p.SRem(ctx, s.activeKey(), id)
			return nil
		})
		return err
	}, s.key(id))
	switch {
	case errors.Is(err, redis.TxFailedErr):
		return Schedule{}, httpx.Errorf(httpx.CodeConflict, "schedule %s changed while cancelling; retry", id)
	case err != nil:
		var he *httpx.Error
		if errors.As(err, &he) {
			return Schedule{}, err
		}
		return Schedule{}, unavailable(err, "cancel")
	}
	return out, nil
}

// Lookup returns schedule id whatever its tenant, for the scheduler, which acts for every
// tenant and runs each schedule under the tenant stored in it.
func (s *Store) Lookup(ctx context.Context, id string) (Schedule, error) {
	if !idRE.MatchString(id) {
		return Schedule{}, ErrNotFound
	}
	return s.load(ctx, id)
}
