package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/store"
)

// Tracker measures realised accuracy: it records each directional prediction made from a
// bar, scores it once the next bar is final, and keeps per-version totals and a rolling
// window of the latest outcomes across versions.
//
// Keys (under the space's prefix):
//
//	track:pending:<symbol>   HASH "<version>|<bar unix>" → Prediction (JSON), expiring
//	track:version:<v>        HASH recorded, pending, scored, correct
//	track:recent             LIST "<version> <0|1>", newest first, trimmed to the window
//
// A prediction is keyed by (symbol, bar, version), and a model is deterministic, so asking
// for the same bar again does not count twice. Scoring runs in a Lua script that removes the
// pending record and counts the outcome in one step, so two scorers never count it twice.
type Tracker struct {
	rdb    redis.UniversalClient
	keys   store.Keys
	window int
	ttl    time.Duration
}

// Prediction is one recorded directional call.
type Prediction struct {
	Symbol      string    `json:"symbol"`
	Version     string    `json:"version"`
	BarTime     time.Time `json:"bar_time"` // the bar whose features were used; the outcome is the next bar
	Up          bool      `json:"up"`
	Probability float64   `json:"probability"`
	PredictedAt time.Time `json:"predicted_at"`
}

// Figures are realised accuracy numbers.
type Figures struct {
	Recorded int64   `json:"recorded"`
	Pending  int64   `json:"pending"`
	Scored   int64   `json:"scored"`
	Correct  int64   `json:"correct"`
	Accuracy float64 `json:"accuracy"` // Correct/Scored; 0 when nothing is scored
}

// DefaultWindow is the number of latest scored predictions the rolling accuracy covers.
const DefaultWindow = 500

// pendingTTL drops records whose outcome never arrives (a delisted symbol, a provider that
// stopped answering): nobody can score them, and they must not pile up.
const pendingTTL = 30 * 24 * time.Hour

// NewTracker returns a tracker in keys whose rolling accuracy covers the latest window
// scored predictions (DefaultWindow when <= 0).
func NewTracker(rdb redis.UniversalClient, keys store.Keys, window int) *Tracker {
	if window <= 0 {
		window = DefaultWindow
	}
	return &Tracker{rdb: rdb, keys: keys, window: window, ttl: pendingTTL}
}

// Window is the size of the rolling window.
func (t *Tracker) Window() int { return t.window }

func (t *Tracker) key(parts ...string) string {
	return t.keys.Key(append([]string{"track"}, parts...)...)
}

func field(version string, bar time.Time) string {
	return version + "|" + strconv.FormatInt(bar.Unix(), 10)
}

var recordScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'recorded', 1)
redis.call('HINCRBY', KEYS[2], 'pending', 1)
return 1`)

// Record stores p until its outcome is known. It reports whether p was new (false when the
// same version already predicted the same bar of the same symbol).
func (t *Tracker) Record(ctx context.Context, p Prediction) (bool, error) {
	doc, err := json.Marshal(p)
	if err != nil {
		return false, err
	}
	n, err := recordScript.Run(ctx, t.rdb,
		[]string{t.key("pending", p.Symbol), t.key("version", p.Version)},
		field(p.Version, p.BarTime), doc, t.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("tracker: record: %w", err)
	}
	return n == 1, nil
}

var scoreScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'pending', -1)
redis.call('HINCRBY', KEYS[2], 'scored', 1)
redis.call('HINCRBY', KEYS[2], 'correct', ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
return 1`)

// Score settles symbol's pending predictions whose outcome the bars show. bars are the
// symbol's daily bars, oldest first; the first complete of them are final (the last bar of
// a live feed is still forming and must not decide an outcome). A prediction made at bar i
// is right when its call matches the sign of bars[i+1].Close - bars[i].Close, as the
// training labels define it (an unchanged close counts as down). It returns how many
// predictions it scored.
func (t *Tracker) Score(ctx context.Context, symbol string, bars []market.Bar, complete int) (int, error) {
	pending, err := t.rdb.HGetAll(ctx, t.key("pending", symbol)).Result()
	if err != nil {
		return 0, fmt.Errorf("tracker: %w", err)
	}
	if len(pending) == 0 {
		return 0, nil
	}
	index := make(map[int64]int, len(bars))
	for i, b := range bars {
		index[b.Time.Unix()] = i
	}
	scored := 0
	for f, doc := range pending {
		var p Prediction
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			t.rdb.HDel(ctx, t.key("pending", symbol), f) // unreadable: it can never be scored
			continue
		}
		i, ok := index[p.BarTime.Unix()]
		if !ok || i+1 >= complete || i+1 >= len(bars) {
			continue // the outcome bar is not final yet, or these bars do not reach that far
		}
		wentUp := bars[i+1].Close > bars[i].Close
		correct := 0
		if wentUp == p.Up {
			correct = 1
		}
		n, err := scoreScript.Run(ctx, t.rdb,
			[]string{t.key("pending", symbol), t.key("version", p.Version), t.key("recent")},
			f, correct, p.Version+" "+strconv.Itoa(correct), t.window).Int()
		if err != nil {
			return scored, fmt.Errorf("tracker: score: %w", err)
		}
		scored += n
	}
	return scored, nil
}

// Version returns a version's realised totals.
func (t *Tracker) Version(ctx context.Context, version string) (Figures, error) {
	m, err := t.rdb.HGetAll(ctx, t.key("version", version)).Result()
	if err != nil {
		return Figures{}, fmt.Errorf("tracker: %w", err)
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	f := Figures{Recorded: num("recorded"), Pending: num("pending"), Scored: num("scored"), Correct: num("correct")}
	if f.Scored > 0 {
		f.Accuracy = float64(f.Correct) / float64(f.Scored)
	}
	return f, nil
}

// Rolling returns the accuracy over the latest n scored predictions of any version (the
// whole window when n <= 0 or n > Window()).
func (t *Tracker) Rolling(ctx context.Context, n int) (Figures, error) {
	if n <= 0 || n > t.window {
		n = t.window
	}
	items, err := t.rdb.LRange(ctx, t.key("recent"), 0, int64(n-1)).Result()
	if err != nil {
		return Figures{}, fmt.Errorf("tracker: %w", err)
	}
	var f Figures
	for _, it := range items {
		f.Scored++
		if strings.HasSuffix(it, " 1") {
			f.Correct++
		}
	}
	if f.Scored > 0 {
		f.Accuracy = float64(f.Correct) / float64(f.Scored)
	}
	return f, nil
}

// Degraded is the alert check: it reports whether the rolling accuracy over the latest
// window scored predictions fell below threshold. Fewer than minScored outcomes never count
// as degraded: on 20 coin flips an accuracy of 0.40 is ordinary luck (one standard error is
// 0.11), not a broken model.
func (t *Tracker) Degraded(ctx context.Context, window int, threshold float64, minScored int) (bool, Figures, error) {
	f, err := t.Rolling(ctx, window)
	if err != nil {
		return false, f, err
	}
	return f.Scored >= int64(max(minScored, 1)) && f.Accuracy < threshold, f, nil
}

// Prevailing returns the version behind most of the latest n scored predictions (the whole
// window when n <= 0 or n > Window()): the version a degraded rolling accuracy is mostly
// about. Of versions with equally many outcomes, the one scored most recently wins, since
// it is the one serving. It returns "" when nothing is scored.
func (t *Tracker) Prevailing(ctx context.Context, n int) (string, error) {
	if n <= 0 || n > t.window {
		n = t.window
	}
	items, err := t.rdb.LRange(ctx, t.key("recent"), 0, int64(n-1)).Result()
	if err != nil {
		return "", fmt.Errorf("tracker: %w", err)
	}
	count := map[string]int{}
	best := ""
	for _, it := range items { // newest first: a later tie does not displace an earlier one
		v, _, ok := strings.Cut(it, " ")
		if !ok {
			continue
		}
		count[v]++
		if best == "" || count[v] > count[best] {
			best = v
		}
	}
	return best, nil
}
