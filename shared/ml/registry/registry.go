// Package registry keeps trained models in Redis, in the ml service's key space: every
// registered version's artifact and metadata, a latest pointer (the newest registration), a
// promoted pointer (the version the ensemble serves) with the promotion history that
// Rollback walks back, and a pub/sub channel that tells every ensemble replica when the
// promoted version changes.
//
// Keys (under the space's prefix, "ml:" in production):
//
//	registry:seq              INCR counter behind version ids v1, v2, ...
//	registry:versions         ZSET of version ids scored by their sequence number
//	registry:meta:<v>         the Version document (JSON)
//	registry:artifact:<v>     the ml.Artifact document (JSON), checked against its hash on load
//	registry:latest           id of the newest registered version
//	registry:promoted         id of the promoted version
//	registry:history          LIST of promoted ids, newest first (head = promoted)
//	registry:events           pub/sub channel of Event documents
//
// Pub/sub delivers at most once and only to connected subscribers, so a subscriber must
// also poll Promoted now and then (see Watch): the pointer, not the message, is the truth.
//
// The package also holds the realised-accuracy Tracker (tracker.go) and the training
// pipeline shared by the train command, the ml-train function and the ensemble's local
// bootstrap (train.go).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/store"
)

// Errors callers act on with errors.Is.
var (
	// ErrNotFound: no version with that id.
	ErrNotFound = errors.New("registry: no such model version")
	// ErrNoModel: nothing has been promoted yet.
	ErrNoModel = errors.New("registry: no model promoted")
	// ErrNoPrevious: Rollback has no earlier promotion to return to.
	ErrNoPrevious = errors.New("registry: no earlier promoted version to roll back to")
	// ErrCorrupt: a stored artifact does not decode or does not match its recorded hash.
	ErrCorrupt = errors.New("registry: stored artifact is corrupt")
)

// historyLen bounds the promotion history kept for rollbacks.
const historyLen = 100

// Version is one registered model: what it was trained on, what it takes, how it scored
// walk-forward, and the hash of its artifact.
type Version struct {
	Version      string       `json:"version"`
	Seq          int64        `json:"seq"`
	RegisteredAt time.Time    `json:"registered_at"`
	TrainedAt    time.Time    `json:"trained_at"`
	DataRange    ml.DataRange `json:"data_range"`
	Symbols      []string     `json:"symbols"`
	Features     []string     `json:"features"`
	ArtifactHash string       `json:"artifact_hash"`
	ArtifactSize int          `json:"artifact_bytes"`
	// Source says where the training bars came from, e.g. "synthetic" or "csv".
	Source string `json:"source,omitempty"`
	Note   string `json:"note,omitempty"`
	// Metrics is the walk-forward report the artifact carries, when it was evaluated.
	Metrics *ml.Report `json:"metrics,omitempty"`
}

// Meta is what a caller adds to an artifact when registering it.
type Meta struct {
	Source string
	Note   string
}

// Event is published on every registration, promotion and rollback.
type Event struct {
	Type    string    `json:"type"` // EventRegistered, EventPromoted or EventRolledBack
	Version string    `json:"version"`
	At      time.Time `json:"at"`
}

// Event types.
const (
	EventRegistered = "registered"
	EventPromoted   = "promoted"
	EventRolledBack = "rolled_back"
)

// Registry is the model registry in one Redis key space. It is safe for concurrent use.
type Registry struct {
	rdb  redis.UniversalClient
	keys store.Keys
	now  func() time.Time
}

// New returns the registry kept in rdb under keys (store.NewKeys("ml") in production).
func New(rdb redis.UniversalClient, keys store.Keys) *Registry {
	return &Registry{rdb: rdb, keys: keys, now: time.Now}
}

func (r *Registry) key(parts ...string) string {
	return r.keys.Key(append([]string{"registry"}, parts...)...)
}

// Channel is the pub/sub channel events are published on.
func (r *Registry) Channel() string { return r.key("events") }

// Register stores a as a new version and moves the latest pointer to it. It does not
// promote: serving a model is a separate, deliberate step.
func (r *Registry) Register(ctx context.Context, a *ml.Artifact, meta Meta) (Version, error) {
	if _, err := a.LoadModel(); err != nil {
		return Version{}, err
	}
	hash, err := a.Hash()
	if err != nil {
		return Version{}, err
	}
	body, err := json.Marshal(a)
	if err != nil {
		return Version{}, err
	}
	seq, err := r.rdb.Incr(ctx, r.key("seq")).Result()
	if err != nil {
		return Version{}, fmt.Errorf("registry: %w", err)
	}
	v := Version{
		Version: "v" + strconv.FormatInt(seq, 10), Seq: seq, RegisteredAt: r.now().UTC(),
		TrainedAt: a.TrainedAt, DataRange: a.DataRange, Symbols: slices.Clone(a.Symbols),
		Features: slices.Clone(a.FeatureNames), ArtifactHash: hash, ArtifactSize: len(body),
		Source: meta.Source, Note: meta.Note, Metrics: a.Metrics,
	}
	doc, err := json.Marshal(v)
	if err != nil {
		return Version{}, err
	}
	ev, _ := json.Marshal(Event{Type: EventRegistered, Version: v.Version, At: v.RegisteredAt})
	_, err = r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.key("artifact", v.Version), body, 0)
		p.Set(ctx, r.key("meta", v.Version), doc, 0)
		p.ZAdd(ctx, r.key("versions"), redis.Z{Score: float64(seq), Member: v.Version})
		p.Set(ctx, r.key("latest"), v.Version, 0)
		p.Publish(ctx, r.Channel(), ev)
		return nil
	})
	if err != nil {
		return Version{}, fmt.Errorf("registry: register: %w", err)
	}
	return v, nil
}

// Get returns the metadata of version id.
func (r *Registry) Get(ctx context.Context, id string) (Version, error) {
	b, err := r.rdb.Get(ctx, r.key("meta", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Version{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Version{}, fmt.Errorf("registry: %w", err)
	}
	var v Version
	if err := json.Unmarshal(b, &v); err != nil {
		return Version{}, fmt.Errorf("%w: metadata of %s: %v", ErrCorrupt, id, err)
	}
	return v, nil
}

// Artifact returns version id's artifact after checking it against the recorded hash, so a
// model that was altered in Redis is never served.
func (r *Registry) Artifact(ctx context.Context, id string) (*ml.Artifact, Version, error) {
	v, err := r.Get(ctx, id)
	if err != nil {
		return nil, Version{}, err
	}
	b, err := r.rdb.Get(ctx, r.key("artifact", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, v, fmt.Errorf("%w: %s has metadata but no artifact", ErrCorrupt, id)
	}
	if err != nil {
		return nil, v, fmt.Errorf("registry: %w", err)
	}
	a, err := ml.ParseArtifact(b)
	if err != nil {
		return nil, v, fmt.Errorf("%w: %s: %v", ErrCorrupt, id, err)
	}
	hash, err := a.Hash()
	if err != nil {
		return nil, v, err
	}
	if hash != v.ArtifactHash {
		return nil, v, fmt.Errorf("%w: %s hashes to %s, registered as %s", ErrCorrupt, id, hash, v.ArtifactHash)
	}
	return a, v, nil
}

// pointer reads a pointer key; ok is false when it is unset.
func (r *Registry) pointer(ctx context.Context, name string) (string, bool, error) {
	id, err := r.rdb.Get(ctx, r.key(name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("registry: %w", err)
	}
	return id, true, nil
}

// PromotedID returns the id of the promoted version, or ErrNoModel.
func (r *Registry) PromotedID(ctx context.Context) (string, error) {
	id, ok, err := r.pointer(ctx, "promoted")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrNoModel
	}
	return id, nil
}

// Promoted returns the promoted version's metadata, or ErrNoModel.
func (r *Registry) Promoted(ctx context.Context) (Version, error) {
	id, err := r.PromotedID(ctx)
	if err != nil {
		return Version{}, err
	}
	return r.Get(ctx, id)
}

// Latest returns the newest registered version, or ErrNotFound when there is none.
func (r *Registry) Latest(ctx context.Context) (Version, error) {
	id, ok, err := r.pointer(ctx, "latest")
	if err != nil {
		return Version{}, err
	}
	if !ok {
		return Version{}, fmt.Errorf("%w: the registry is empty", ErrNotFound)
	}
	return r.Get(ctx, id)
}

// List returns every version, newest first.
func (r *Registry) List(ctx context.Context) ([]Version, error) {
	ids, err := r.rdb.ZRevRange(ctx, r.key("versions"), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = r.key("meta", id)
	}
	docs, err := r.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	out := make([]Version, 0, len(ids))
	for i, d := range docs {
		s, ok := d.(string)
		if !ok {
			continue // removed between the two reads
		}
		var v Version
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("%w: metadata of %s: %v", ErrCorrupt, ids[i], err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Promote makes version id the one served and announces it. Promoting the version already
// promoted changes nothing and announces nothing.
func (r *Registry) Promote(ctx context.Context, id string) (Version, error) {
	v, err := r.Get(ctx, id)
	if err != nil {
		return Version{}, err
	}
	changed := false
	err = r.transact(ctx, func(tx *redis.Tx) error {
		cur, _, err := r.pointerTx(ctx, tx, "promoted")
		if err != nil {
			return err
		}
		if changed = cur != id; !changed {
			return nil
		}
		ev, _ := json.Marshal(Event{Type: EventPromoted, Version: id, At: r.now().UTC()})
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, r.key("promoted"), id, 0)
			p.LPush(ctx, r.key("history"), id)
			p.LTrim(ctx, r.key("history"), 0, historyLen-1)
			p.Publish(ctx, r.Channel(), ev)
			return nil
		})
		return err
	}, r.key("promoted"), r.key("history"))
	if err != nil {
		return Version{}, err
	}
	return v, nil
}

// Rollback returns to the version promoted before the current one and announces it.
func (r *Registry) Rollback(ctx context.Context) (Version, error) {
	var prev string
	err := r.transact(ctx, func(tx *redis.Tx) error {
		h, err := tx.LRange(ctx, r.key("history"), 0, 1).Result()
		if err != nil {
			return err
		}
		if len(h) < 2 {
			return ErrNoPrevious
		}
		prev = h[1]
		ev, _ := json.Marshal(Event{Type: EventRolledBack, Version: prev, At: r.now().UTC()})
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LPop(ctx, r.key("history"))
			p.Set(ctx, r.key("promoted"), prev, 0)
			p.Publish(ctx, r.Channel(), ev)
			return nil
		})
		return err
	}, r.key("promoted"), r.key("history"))
	if err != nil {
		return Version{}, err
	}
	return r.Get(ctx, prev)
}

func (r *Registry) pointerTx(ctx context.Context, tx *redis.Tx, name string) (string, bool, error) {
	id, err := tx.Get(ctx, r.key(name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return id, err == nil, err
}

// transact runs fn under WATCH on keys, retrying when another writer got in between.
func (r *Registry) transact(ctx context.Context, fn func(tx *redis.Tx) error, keys ...string) error {
	for range 20 {
		err := r.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil && !errors.Is(err, ErrNoPrevious) {
				return fmt.Errorf("registry: %w", err)
			}
			return err
		}
	}
	return fmt.Errorf("registry: too much contention on %v", keys)
}

// Subscribe returns the registry's events until ctx ends; it returns once Redis has
// confirmed the subscription, so an event published after it returns is seen. go-redis
// resubscribes after a reconnect, but events published meanwhile are lost: callers poll
// PromotedID as well.
func (r *Registry) Subscribe(ctx context.Context) (<-chan Event, error) {
	ps := r.rdb.Subscribe(ctx, r.Channel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("registry: subscribe: %w", err)
	}
	out := make(chan Event, 16)
	go func() {
		defer close(out)
		defer ps.Close()
		ch := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				var ev Event
				if json.Unmarshal([]byte(m.Payload), &ev) != nil {
					continue
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// Claim takes a named, expiring lock in the registry's key space and reports whether this
// caller got it. It keeps several replicas from doing the same one-off work (a bootstrap
// training) at once; the expiry frees it if the holder dies.
func (r *Registry) Claim(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ok, err := r.rdb.SetNX(ctx, r.key("claim", name), r.now().UTC().Format(time.RFC3339Nano), ttl).Result()
	if err != nil {
		return false, fmt.Errorf("registry: claim %s: %w", name, err)
	}
	return ok, nil
}
