package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
)

// Loaded is a model in memory with what is needed to feed it.
type Loaded struct {
	Version  registry.Version
	Model    ml.Model
	LoadedAt time.Time
	index    map[string]int // feature name → column
}

// Info describes l.
func (l *Loaded) Info() ModelInfo {
	return ModelInfo{Version: l.Version.Version, Features: l.Version.Features, ArtifactHash: l.Version.ArtifactHash,
		TrainedAt: l.Version.TrainedAt, LoadedAt: l.LoadedAt}
}

// NumFeatures is the row width the model takes.
func (l *Loaded) NumFeatures() int { return len(l.Version.Features) }

// Predict fills out[i] for row X[i]. Rows must already be validated (width and finite
// values); this is the hot path and checks nothing.
func (l *Loaded) Predict(X [][]float64, out []Prediction) {
	for i, x := range X {
		out[i] = predictionOf(l.Model.PredictProba(x))
	}
}

func predictionOf(p float64) Prediction {
	c := ClassDown
	if ml.Up(p) {
		c = ClassUp
	}
	return Prediction{Probability: p, Class: c, Confidence: ml.Confidence(p)}
}

// Registry is the part of the model registry the service uses.
type Registry interface {
	PromotedID(ctx context.Context) (string, error)
	Artifact(ctx context.Context, id string) (*ml.Artifact, registry.Version, error)
	Subscribe(ctx context.Context) (<-chan registry.Event, error)
	List(ctx context.Context) ([]registry.Version, error)
}

var _ Registry = (*registry.Registry)(nil)

// Bootstrap provides a first model when the registry has none: it trains, registers and
// promotes one and returns its version. The ensemble uses it only in local mode.
type Bootstrap func(ctx context.Context) (registry.Version, error)

// Service holds the promoted model and loads others on request.
type Service struct {
	reg Registry
	log *slog.Logger
	cur atomic.Pointer[Loaded]

	mu     sync.Mutex
	others map[string]*Loaded // non-promoted versions asked for by id, at most maxOthers
	order  []string           // load order of others, oldest first
	status atomic.Value       // string: why no model is loaded, for readiness
}

// maxOthers bounds the extra versions kept in memory for callers that pin a version.
const maxOthers = 4

// NewService returns a service with no model loaded; Run loads one.
func NewService(reg Registry, log *slog.Logger) *Service {
	s := &Service{reg: reg, log: log, others: map[string]*Loaded{}}
	s.status.Store("no model loaded yet")
	return s
}

// Current returns the serving model, or nil before the first load.
func (s *Service) Current() *Loaded { return s.cur.Load() }

// CheckHealth is the readiness check: ready once a model is loaded.
func (s *Service) CheckHealth(context.Context) error {
	if s.cur.Load() == nil {
		return errors.New(s.status.Load().(string))
	}
	return nil
}

// ErrUnknownVersion is returned for a model version the registry does not have.
var ErrUnknownVersion = errors.New("unknown model version")

// Model returns the model for version id ("" means the promoted one). A version other than
// the promoted one is loaded from the registry on first use.
func (s *Service) Model(ctx context.Context, id string) (*Loaded, error) {
	cur := s.cur.Load()
	if id == "" || (cur != nil && cur.Version.Version == id) {
		if cur == nil {
			return nil, errNotLoaded
		}
		return cur, nil
	}
	s.mu.Lock()
	l, ok := s.others[id]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	l, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.others[id]; !ok {
		s.others[id] = l
		s.order = append(s.order, id)
		if len(s.order) > maxOthers {
			delete(s.others, s.order[0])
			s.order = s.order[1:]
		}
	}
	return s.others[id], nil
}

var errNotLoaded = errors.New("no model loaded")

func (s *Service) load(ctx context.Context, id string) (*Loaded, error) {
	a, v, err := s.reg.Artifact(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownVersion, id)
	}
	if err != nil {
		return nil, err
	}
	m, err := a.LoadModel()
	if err != nil {
		return nil, err
	}
	l := &Loaded{Version: v, Model: m, LoadedAt: time.Now().UTC(), index: make(map[string]int, len(v.Features))}
	for i, n := range v.Features {
		l.index[n] = i
	}
	// A model that answers NaN would turn every request into a 500; refuse it at load.
	probe := make([]float64, len(v.Features))
	if p := m.PredictProba(probe); math.IsNaN(p) || p < 0 || p > 1 {
		return nil, fmt.Errorf("model %s answers %v for a zero row", id, p)
	}
	return l, nil
}

// RunOptions configure Run.
type RunOptions struct {
	// Poll is how often the promoted pointer is re-read besides the pub/sub announcements,
	// which are lost while the subscription is down. Default 5s.
	Poll time.Duration
	// Bootstrap, when set, is called when the registry has no promoted model at all.
	Bootstrap Bootstrap
}

// Run keeps the served model equal to the registry's promoted version until ctx ends:
// it loads the promoted model, then reloads whenever a promotion or rollback is announced
// or the poll finds the pointer moved. A version that fails to load is logged and the
// previous model keeps serving.
func (s *Service) Run(ctx context.Context, opts RunOptions) {
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	var events <-chan registry.Event
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	bootstrapped := opts.Bootstrap == nil
	for {
		if events == nil {
			if ch, err := s.reg.Subscribe(ctx); err == nil {
				events = ch
			} else if ctx.Err() == nil {
				s.log.Warn("registry subscription failed; polling only until it recovers", "err", err)
			}
		}
		err := s.sync(ctx)
		if errors.Is(err, registry.ErrNoModel) && !bootstrapped {
			bootstrapped = true
			s.bootstrap(ctx, opts.Bootstrap)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil // the subscription ended (Redis went away); resubscribe next round
			}
		case <-tick.C:
		}
	}
}

func (s *Service) bootstrap(ctx context.Context, b Bootstrap) {
	s.status.Store("no model in the registry; training a bootstrap model")
	s.log.Info("the registry has no promoted model; local mode: training a small model on the synthetic market")
	started := time.Now()
	v, err := b(ctx)
	if err != nil {
		s.status.Store("no model in the registry and the bootstrap training failed")
		s.log.Error("bootstrap training failed; staying unready until a model is promoted", "err", err)
		return
	}
	if v.Version == "" {
		return // another replica holds the claim; its promotion will arrive
	}
	s.log.Info("bootstrap model registered and promoted", "version", v.Version, "symbols", v.Symbols,
		"seconds", time.Since(started).Seconds())
}

// sync loads the promoted version if it is not the one served.
func (s *Service) sync(ctx context.Context) error {
	id, err := s.reg.PromotedID(ctx)
	if err != nil {
		if errors.Is(err, registry.ErrNoModel) {
			if s.cur.Load() == nil {
				s.status.Store("no model promoted in the registry")
			}
		} else {
			s.log.Warn("reading the promoted model failed", "err", err)
		}
		return err
	}
	if cur := s.cur.Load(); cur != nil && cur.Version.Version == id {
		return nil
	}
	l, err := s.load(ctx, id)
	if err != nil {
		if s.cur.Load() == nil {
			s.status.Store(fmt.Sprintf("promoted model %s cannot be loaded", id))
		}
		s.log.Error("loading the promoted model failed; the model already served (if any) stays", "version", id, "err", err)
		return err
	}
	old := s.cur.Swap(l)
	from := ""
	if old != nil {
		from = old.Version.Version
	}
	s.log.Info("serving model", "version", id, "previous", from, "features", len(l.Version.Features),
		"trained_at", l.Version.TrainedAt)
	return nil
}

// Versions lists the registry's versions, newest first.
func (s *Service) Versions(ctx context.Context) ([]registry.Version, error) {
	vs, err := s.reg.List(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Clip(vs), nil
}
