package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// Extension attributes Knative's dispatcher adds to a dead-lettered event.
const (
	extErrorDest = "knativeerrordest"
	extErrorCode = "knativeerrorcode"
	extErrorData = "knativeerrordata"
)

// Letter is one parked event, as listed to admins.
type Letter struct {
	ID       string `json:"id"`       // the letter's id: a hash of (source, event id)
	EventID  string `json:"event_id"` // the original CloudEvent id
	Source   string `json:"source"`   // the original source
	Type     string `json:"type"`     // the original type
	Subject  string `json:"subject,omitempty"`
	Dest     string `json:"error_dest,omitempty"` // the subscriber that failed
	Code     int    `json:"error_code"`           // its last HTTP status; 0 if it never answered
	Response string `json:"error_data,omitempty"` // its last answer, decoded, truncated
	// Count is how many times this event reached the dead-letter sink (again after a
	// failed replay, or once per failing Trigger).
	Count      int64     `json:"count"`
	FirstAt    time.Time `json:"first_at"`
	LastAt     time.Time `json:"last_at"`
	Replays    int64     `json:"replays"`
	ReplayedAt time.Time `json:"replayed_at,omitzero"`
	// Event is the original event in structured JSON, error attributes included.
	Event json.RawMessage `json:"event"`
}

// letterStore keeps letters in Redis: events:dl:<id> (a hash) and events:dl:index (a
// sorted set by last arrival) for listing. Letters expire after ttl without news.
type letterStore struct {
	rdb  redis.UniversalClient
	keys store.Keys
	ttl  time.Duration
	now  func() time.Time
}

func newStore(rdb redis.UniversalClient, keys store.Keys) *letterStore {
	return &letterStore{rdb: rdb, keys: keys, ttl: 30 * 24 * time.Hour, now: time.Now}
}

func (s *letterStore) key(id string) string { return s.keys.Key("dl", id) }
func (s *letterStore) index() string        { return s.keys.Key("dl", "index") }

// letterID is stable per (source, id), so a redelivered dead letter updates its record.
func letterID(source, id string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + id))
	return hex.EncodeToString(sum[:12])
}

// putScript upserts a letter: first-seen fields only once, the latest error always, the
// count by one. KEYS letter, index; ARGV id, now (unix ms), ttl ms, then field/value pairs
// for a new letter, then "--", then the latest-error pairs.
var putScript = redis.NewScript(`
local i = 4
local first = {}
while ARGV[i] ~= '--' do first[#first+1] = ARGV[i]; i = i + 1 end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(first)) end
local latest = {}
for j = i + 1, #ARGV do latest[#latest+1] = ARGV[j] end
redis.call('HSET', KEYS[1], unpack(latest))
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`)

// put records e, which the Broker dead-lettered.
func (s *letterStore) put(ctx context.Context, e cloudevents.Event) (string, error) {
	id := letterID(e.Source(), e.ID())
	doc, err := json.Marshal(e)
	if err != nil {
		return "", httpx.Wrap(err, httpx.CodeInvalid, "event cannot be encoded")
	}
	ext := e.Extensions()
	code, _ := strconv.Atoi(fmt.Sprint(ext[extErrorCode]))
	var resp string
	if d, ok := ext[extErrorData]; ok {
		b, err := base64.StdEncoding.DecodeString(fmt.Sprint(d))
		if err != nil {
			b = []byte(fmt.Sprint(d))
		}
		resp = string(b[:min(len(b), 1024)])
	}
	dest, _ := ext[extErrorDest].(string)
	if dest == "" && ext[extErrorDest] != nil {
		dest = fmt.Sprint(ext[extErrorDest])
	}
	now := s.now().UTC()
	args := []any{id, now.UnixMilli(), s.ttl.Milliseconds(),
		"id", id, "event_id", e.ID(), "source", e.Source(), "type", e.Type(), "subject", e.Subject(),
		"first_at", now.Format(time.RFC3339Nano), "--",
		"error_dest", dest, "error_code", strconv.Itoa(code), "error_data", resp,
		"last_at", now.Format(time.RFC3339Nano), "event", string(doc)}
	if err := putScript.Run(ctx, s.rdb, []string{s.key(id), s.index()}, args...).Err(); err != nil {
		return "", httpx.Wrap(err, httpx.CodeUnavailable, "dead-letter store unavailable")
	}
	return id, nil
}

// get returns one letter.
func (s *letterStore) get(ctx context.Context, id string) (Letter, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return Letter{}, httpx.Wrap(err, httpx.CodeUnavailable, "dead-letter store unavailable")
	}
	if len(m) == 0 {
		return Letter{}, httpx.Errorf(httpx.CodeNotFound, "no dead letter %q", id)
	}
	return fromMap(m), nil
}

// list returns up to limit letters, the most recent first, dropping expired index entries.
func (s *letterStore) list(ctx context.Context, limit int) ([]Letter, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.index(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, httpx.Wrap(err, httpx.CodeUnavailable, "dead-letter store unavailable")
	}
	out := make([]Letter, 0, len(ids))
	for _, id := range ids {
		l, err := s.get(ctx, id)
		if httpx.ErrorCode(err) == httpx.CodeNotFound {
			s.rdb.ZRem(ctx, s.index(), id)
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// replayed counts one replay of a letter.
func (s *letterStore) replayed(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, s.key(id), "replays", 1)
		p.HSet(ctx, s.key(id), "replayed_at", s.now().UTC().Format(time.RFC3339Nano))
		return nil
	})
	return err
}

func fromMap(m map[string]string) Letter {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	ts := func(k string) time.Time { t, _ := time.Parse(time.RFC3339Nano, m[k]); return t }
	return Letter{
		ID: m["id"], EventID: m["event_id"], Source: m["source"], Type: m["type"], Subject: m["subject"],
		Dest: m["error_dest"], Code: int(num("error_code")), Response: m["error_data"],
		Count: num("count"), FirstAt: ts("first_at"), LastAt: ts("last_at"),
		Replays: num("replays"), ReplayedAt: ts("replayed_at"), Event: json.RawMessage(m["event"]),
	}
}
