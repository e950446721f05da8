package notify

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/store"
)

// Delivery states of one channel.
const (
	StatusPending    = "pending"    // not tried yet
	StatusDelivering = "delivering" // an attempt is in flight
	StatusRetrying   = "retrying"   // an attempt failed; another will follow
	StatusDelivered  = "delivered"
	StatusFailed     = "failed" // gave up: a permanent error or attempts exhausted
)

// Overall states of a notification.
const (
	OverallQueued     = "queued"
	OverallInProgress = "in_progress"
	OverallDelivered  = "delivered"
	OverallPartial    = "partially_delivered"
	OverallFailed     = "failed"
)

// ChannelStatus is one target's delivery record.
type ChannelStatus struct {
	Index       int        `json:"index"`
	Channel     string     `json:"channel"`
	Target      string     `json:"target,omitempty"` // redacted: scheme and host, or recipient domains
	Status      string     `json:"status"`
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// Terminal reports whether no more attempts will be made.
func (c ChannelStatus) Terminal() bool {
	return c.Status == StatusDelivered || c.Status == StatusFailed
}

// Record is a notification with the status of each of its channels.
type Record struct {
	Notification Notification
	Channels     []ChannelStatus
}

// Overall summarises the channels.
func (r Record) Overall() string {
	var delivered, failed, pending int
	for _, c := range r.Channels {
		switch c.Status {
		case StatusDelivered:
			delivered++
		case StatusFailed:
			failed++
		case StatusPending:
			pending++
		}
	}
	switch n := len(r.Channels); {
	case delivered == n:
		return OverallDelivered
	case pending == n:
		return OverallQueued
	case delivered+failed < n:
		return OverallInProgress
	case delivered > 0:
		return OverallPartial
	}
	return OverallFailed
}

// Errors of the Store.
var (
	ErrNotFound = errors.New("notify: no such notification")
	ErrExists   = errors.New("notify: notification id already used")
)

// Store keeps notifications and their delivery status in Redis:
//
//	<prefix>n:<id>          hash: "doc" the notification (JSON), "ch:<i>" channel i's status (JSON)
//	<prefix>lock:<id>:<i>   lease held while a worker delivers channel i
type Store struct {
	rdb  redis.UniversalClient
	keys store.Keys
	ttl  time.Duration
}

// NewStore returns a store in keys (store.NewKeys("notif")) keeping records for ttl
// (default 7 days).
func NewStore(rdb redis.UniversalClient, keys store.Keys, ttl time.Duration) *Store {
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	return &Store{rdb: rdb, keys: keys, ttl: ttl}
}

func (s *Store) key(id string) string { return s.keys.Key("n", id) }

// Redact describes a target without secrets: a URL's scheme and host (a Slack URL's path is
// its token), the domains of email recipients.
func Redact(t Target) string {
	switch {
	case t.URL != "":
		u, err := url.Parse(t.URL)
		if err != nil {
			return "(invalid URL)"
		}
		return u.Scheme + "://" + u.Host
	case len(t.To) > 0:
		var doms []string
		for _, a := range t.To {
			_, d, _ := strings.Cut(a, "@")
			doms = append(doms, "*@"+d)
		}
		return strings.Join(doms, ", ")
	}
	return "(configured default)"
}

// Create stores a new notification with every channel pending. An id already stored is
// ErrExists: the id is the deduplication key.
func (s *Store) Create(ctx context.Context, n Notification) error {
	doc, err := json.Marshal(n)
	if err != nil {
		return err
	}
	key := s.key(n.ID)
	ok, err := s.rdb.HSetNX(ctx, key, "doc", doc).Result()
	if err != nil {
		return fmt.Errorf("notify: store: %w", err)
	}
	if !ok {
		return ErrExists
	}
	fields := []any{}
	for i, t := range n.Targets {
		cs, _ := json.Marshal(ChannelStatus{Index: i, Channel: t.Channel, Target: Redact(t), Status: StatusPending, UpdatedAt: n.CreatedAt})
		fields = append(fields, "ch:"+strconv.Itoa(i), cs)
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, fields...)
	pipe.Expire(ctx, key, s.ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("notify: store: %w", err)
	}
	return nil
}

// Delete removes a notification (used when it could not be queued).
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.rdb.Del(ctx, s.key(id)).Err()
}

// Get reads a notification and its channels.
func (s *Store) Get(ctx context.Context, id string) (Record, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return Record{}, fmt.Errorf("notify: store: %w", err)
	}
	doc, ok := m["doc"]
	if !ok {
		return Record{}, ErrNotFound
	}
	var r Record
	if err := json.Unmarshal([]byte(doc), &r.Notification); err != nil {
		return Record{}, fmt.Errorf("notify: stored notification %s is corrupt: %w", id, err)
	}
	r.Channels = make([]ChannelStatus, len(r.Notification.Targets))
	for i, t := range r.Notification.Targets {
		r.Channels[i] = ChannelStatus{Index: i, Channel: t.Channel, Target: Redact(t), Status: StatusPending}
		if v, ok := m["ch:"+strconv.Itoa(i)]; ok {
			_ = json.Unmarshal([]byte(v), &r.Channels[i])
		}
	}
	return r, nil
}

// SetStatus records one channel's status.
func (s *Store) SetStatus(ctx context.Context, id string, cs ChannelStatus) error {
	b, _ := json.Marshal(cs)
	if err := s.rdb.HSet(ctx, s.key(id), "ch:"+strconv.Itoa(cs.Index), b).Err(); err != nil {
		return fmt.Errorf("notify: store: %w", err)
	}
	return nil
}

// Acquire takes the delivery lease of channel i; false means another worker holds it.
func (s *Store) Acquire(ctx context.Context, id string, i int, lease time.Duration) (bool, string, error) {
	token := rand.Text()
	ok, err := s.rdb.SetNX(ctx, s.keys.Key("lock", id, strconv.Itoa(i)), token, lease).Result()
	if err != nil {
		return false, "", fmt.Errorf("notify: store: %w", err)
	}
	return ok, token, nil
}

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Release gives the lease back if it is still ours.
func (s *Store) Release(ctx context.Context, id string, i int, token string) {
	_ = releaseScript.Run(ctx, s.rdb, []string{s.keys.Key("lock", id, strconv.Itoa(i))}, token).Err()
}
