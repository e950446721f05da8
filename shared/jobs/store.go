package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// Options configures a Store. Zero values take the defaults.
type Options struct {
	// ResultTTL is how long a job (and so its result summary) is kept after it ends.
	// Default 7 days.
	ResultTTL time.Duration
	// WatchResync is how long Watch waits without a change notification before it re-reads
	// the job, in case a notification was lost while Redis reconnected. Default 30s.
	WatchResync time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store keeps jobs in Redis: one hash per job at jobs:job:<id>, change notifications on the
// pub/sub channel jobs:changes:<id>.
type Store struct {
	rdb  redis.UniversalClient
	keys store.Keys
	opts Options
}

// NewStore returns a Store over rdb.
func NewStore(rdb redis.UniversalClient, opts Options) *Store {
	if opts.ResultTTL <= 0 {
		opts.ResultTTL = 7 * 24 * time.Hour
	}
	if opts.WatchResync <= 0 {
		opts.WatchResync = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, keys: store.NewKeys("jobs"), opts: opts}
}

func (s *Store) key(id string) string     { return s.keys.Key("job", id) }
func (s *Store) channel(id string) string { return s.keys.Key("changes", id) }

// validID keeps ids usable in keys, URLs and SSE streams.
var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// Lua scripts make each check-and-change one atomic step. Every change bumps version and
// publishes the whole job (as a JSON object of the hash fields) so that watchers see each
// state, not just the latest. Errors are "NOTFOUND" or "CONFLICT <current status>".
const luaPublish = `
local function publish(channel, flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  redis.call('PUBLISH', channel, cjson.encode(t))
end
`

// createScript: KEYS[1] job; ARGV field, value, ...
var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('CONFLICT exists') end
redis.call('HSET', KEYS[1], unpack(ARGV))
return redis.call('HGETALL', KEYS[1])`)

// transitionScript: KEYS[1] job; ARGV channel, tenant, to, allowed-from (space separated),
// timestamp field, now, ttl ms (0: keep), result_ref, error, result.
var transitionScript = redis.NewScript(luaPublish + `
local cur = redis.call('HMGET', KEYS[1], 'tenant', 'status', 'total')
if not cur[1] or cur[1] ~= ARGV[2] then return redis.error_reply('NOTFOUND') end
local allowed = false
for s in string.gmatch(ARGV[4], '%S+') do if s == cur[2] then allowed = true end end
if not allowed then return redis.error_reply('CONFLICT ' .. cur[2]) end
redis.call('HSET', KEYS[1], 'status', ARGV[3], ARGV[5], ARGV[6])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'result_ref', ARGV[8]) end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[10]) end
-- a succeeded job with a known size is complete
if ARGV[3] == 'succeeded' and tonumber(cur[3]) > 0 then redis.call('HSET', KEYS[1], 'done', cur[3]) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
if tonumber(ARGV[7]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[7]) end
local job = redis.call('HGETALL', KEYS[1])
publish(ARGV[1], job)
return job`)

// progressScript: KEYS[1] job; ARGV channel, tenant, done, total. Each counter keeps the
// larger of the stored and the given value; the strings are written back unchanged because
// Lua numbers would turn large integers into floats.
var progressScript = redis.NewScript(luaPublish + `
local cur = redis.call('HMGET', KEYS[1], 'tenant', 'status', 'done', 'total')
if not cur[1] or cur[1] ~= ARGV[2] then return redis.error_reply('NOTFOUND') end
if cur[2] ~= 'running' then return redis.error_reply('CONFLICT ' .. cur[2]) end
local changed = false
if tonumber(ARGV[3]) > tonumber(cur[3]) then redis.call('HSET', KEYS[1], 'done', ARGV[3]); changed = true end
if tonumber(ARGV[4]) > tonumber(cur[4]) then redis.call('HSET', KEYS[1], 'total', ARGV[4]); changed = true end
if changed then redis.call('HINCRBY', KEYS[1], 'version', 1) end
local job = redis.call('HGETALL', KEYS[1])
if changed then publish(ARGV[1], job) end
return job`)

// Create stores a new queued job. j.Kind and j.Tenant are required; j.ID is generated when
// empty; j.Total may be preset; other fields are ignored. An existing id is CodeConflict.
func (s *Store) Create(ctx context.Context, j Job) (Job, error) {
	if j.ID == "" {
		j.ID = uuid.NewString()
	}
	var fields []httpx.FieldError
	if !validID.MatchString(j.ID) {
		fields = append(fields, httpx.FieldError{Field: "id", Reason: "must be 1-128 of A-Z a-z 0-9 . _ -"})
	}
	if j.Kind == "" {
		fields = append(fields, httpx.FieldError{Field: "kind", Reason: "required"})
	}
	if j.Tenant == "" {
		fields = append(fields, httpx.FieldError{Field: "tenant", Reason: "required"})
	}
	if j.Total < 0 {
		fields = append(fields, httpx.FieldError{Field: "total", Reason: "must not be negative"})
	}
	if len(fields) > 0 {
		return Job{}, httpx.Invalid("invalid job", fields...)
	}
	res, err := createScript.Run(ctx, s.rdb, []string{s.key(j.ID)},
		"id", j.ID, "kind", j.Kind, "tenant", j.Tenant, "status", string(StatusQueued),
		"done", "0", "total", strconv.FormatInt(j.Total, 10),
		"created_at", s.now(), "version", "1",
	).Result()
	if err != nil {
		return Job{}, s.scriptError(err, "create")
	}
	return fromReply(res)
}

// Get returns the tenant's job id.
func (s *Store) Get(ctx context.Context, tenant, id string) (Job, error) {
	if !validID.MatchString(id) {
		return Job{}, ErrNotFound
	}
	m, err := s.rdb.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return Job{}, unavailable(err)
	}
	if len(m) == 0 || m["tenant"] != tenant {
		return Job{}, ErrNotFound
	}
	return fromMap(m)
}

// Start moves a queued job to running.
func (s *Store) Start(ctx context.Context, tenant, id string) (Job, error) {
	return s.transition(ctx, tenant, id, StatusRunning, "start", "", "", nil)
}

// Progress records that done of total units are finished. Neither counter ever goes back: a
// late, smaller update (from a retried or reordered worker) changes nothing. Only a running
// job takes progress; others answer CodeConflict.
func (s *Store) Progress(ctx context.Context, tenant, id string, done, total int64) (Job, error) {
	if done < 0 || total < 0 || (total > 0 && done > total) {
		return Job{}, httpx.Invalid("invalid progress",
			httpx.FieldError{Field: "done", Reason: "must be between 0 and total"})
	}
	if !validID.MatchString(id) {
		return Job{}, ErrNotFound
	}
	res, err := progressScript.Run(ctx, s.rdb, []string{s.key(id)},
		s.channel(id), tenant, strconv.FormatInt(done, 10), strconv.FormatInt(total, 10)).Result()
	if err != nil {
		return Job{}, s.scriptError(err, "record progress of")
	}
	return fromReply(res)
}

// Succeed ends a running job successfully with a reference to its full result and a small
// JSON summary (either may be empty). Done is set to Total when Total is known.
func (s *Store) Succeed(ctx context.Context, tenant, id, resultRef string, summary json.RawMessage) (Job, error) {
	if len(summary) > 0 && !json.Valid(summary) {
		return Job{}, httpx.Invalid("invalid result", httpx.FieldError{Field: "result", Reason: "must be JSON"})
	}
	return s.transition(ctx, tenant, id, StatusSucceeded, "succeed", resultRef, "", summary)
}

// Fail ends a running job with a caller-safe reason.
func (s *Store) Fail(ctx context.Context, tenant, id, reason string) (Job, error) {
	return s.transition(ctx, tenant, id, StatusFailed, "fail", "", reason, nil)
}

// Cancel ends a queued or running job; the worker notices on its next Progress (Conflict).
func (s *Store) Cancel(ctx context.Context, tenant, id string) (Job, error) {
	return s.transition(ctx, tenant, id, StatusCancelled, "cancel", "", "", nil)
}

func (s *Store) transition(ctx context.Context, tenant, id string, to Status, verb, ref, reason string, summary json.RawMessage) (Job, error) {
	if !validID.MatchString(id) {
		return Job{}, ErrNotFound
	}
	from := make([]string, 0, 2)
	for _, st := range transitions[to] {
		from = append(from, string(st))
	}
	stamp, ttl := "started_at", "0"
	if to.Terminal() {
		stamp, ttl = "finished_at", strconv.FormatInt(s.opts.ResultTTL.Milliseconds(), 10)
	}
	res, err := transitionScript.Run(ctx, s.rdb, []string{s.key(id)},
		s.channel(id), tenant, string(to), strings.Join(from, " "), stamp, s.now(), ttl,
		ref, reason, string(summary)).Result()
	if err != nil {
		return Job{}, s.scriptError(err, verb)
	}
	return fromReply(res)
}

func (s *Store) now() string { return s.opts.Now().UTC().Format(time.RFC3339Nano) }

// scriptError turns a script's error reply into the store's error vocabulary.
func (s *Store) scriptError(err error, verb string) error {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return unavailable(err)
	}
	// Redis prefixes "ERR " to an error reply that has no code of its own ("NOTFOUND").
	msg := strings.TrimPrefix(rerr.Error(), "ERR ")
	switch {
	case msg == "NOTFOUND":
		return ErrNotFound
	case msg == "CONFLICT exists":
		return &httpx.Error{Code: httpx.CodeConflict, Message: "a job with this id exists", Err: err}
	case strings.HasPrefix(msg, "CONFLICT "):
		cur := strings.TrimPrefix(msg, "CONFLICT ")
		return &httpx.Error{
			Code:    httpx.CodeConflict,
			Message: fmt.Sprintf("cannot %s a %s job", verb, cur),
			Extra:   map[string]any{"status": cur},
			Err:     ErrInvalidTransition,
		}
	}
	return unavailable(err)
}

func unavailable(err error) error {
	return httpx.Wrap(err, httpx.CodeUnavailable, "job store unavailable")
}

// fromReply decodes a script's HGETALL reply (a flat field, value list).
func fromReply(res any) (Job, error) {
	flat, ok := res.([]any)
	if !ok || len(flat)%2 != 0 {
		return Job{}, unavailable(fmt.Errorf("jobs: unexpected script reply %T", res))
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	return fromMap(m)
}

// fromMap decodes a job hash. A hash that does not decode is corrupt: internal, not the
// caller's fault.
func fromMap(m map[string]string) (Job, error) {
	j := Job{
		ID: m["id"], Kind: m["kind"], Tenant: m["tenant"], Status: Status(m["status"]),
		ResultRef: m["result_ref"], Error: m["error"],
	}
	if r := m["result"]; r != "" {
		j.Result = json.RawMessage(r)
	}
	var errs []error
	parseInt := func(field string, dst *int64) {
		if v, ok := m[field]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			errs = append(errs, err)
			*dst = n
		}
	}
	parseTime := func(field string, dst *time.Time) {
		if v, ok := m[field]; ok && v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			errs = append(errs, err)
			*dst = t
		}
	}
	parseInt("done", &j.Done)
	parseInt("total", &j.Total)
	parseInt("version", &j.Version)
	parseTime("created_at", &j.CreatedAt)
	parseTime("started_at", &j.StartedAt)
	parseTime("finished_at", &j.FinishedAt)
	if err := errors.Join(errs...); err != nil || j.ID == "" {
		return Job{}, httpx.Wrap(fmt.Errorf("jobs: corrupt job %q: %v", j.ID, err), httpx.CodeInternal, "corrupt job record")
	}
	return j, nil
}
