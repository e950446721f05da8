package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ml/registry"
)

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/predict", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

func TestNotReadyUntilAModelIsPromoted(t *testing.T) {
	f := newFixture(t)
	s, srv := f.startService(t, RunOptions{Poll: 50 * time.Millisecond})
	if err := s.CheckHealth(context.Background()); err == nil {
		t.Fatal("ready with an empty registry")
	}
	resp, body := post(t, srv.URL, `{"rows":[[1]]}`)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("predict before any model: %d %s", resp.StatusCode, body)
	}
	v := f.registerAndPromote(t, logRegArtifact(t, 1))
	waitUntil(t, "the promoted model to load", func() bool { return s.CheckHealth(context.Background()) == nil })
	if s.Current().Version.Version != v.Version {
		t.Fatalf("serving %s", s.Current().Version.Version)
	}
}

func TestPredictValidatesAndAnswers(t *testing.T) {
	f := newFixture(t)
	v := f.registerAndPromote(t, logRegArtifact(t, 1))
	s, srv := f.startService(t, RunOptions{})
	waitUntil(t, "load", func() bool { return s.Current() != nil })

	good, _ := json.Marshal(PredictRequest{Rows: [][]Value{row(2), row(-2)}})
	resp, body := post(t, srv.URL, string(good))
	var pr PredictResponse
	if resp.StatusCode != 200 || json.Unmarshal(body, &pr) != nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if pr.ModelVersion != v.Version || len(pr.Predictions) != 2 {
		t.Fatalf("%+v", pr)
	}
	up, down := pr.Predictions[0], pr.Predictions[1]
	if up.Class != ClassUp || down.Class != ClassDown || up.Probability <= 0.5 || up.Confidence != up.Probability ||
		down.Confidence != 1-down.Probability {
		t.Fatalf("predictions %+v", pr.Predictions)
	}

	names := features.Names()
	width := len(names)
	reordered := append([]string(nil), names...)
	reordered[0], reordered[1] = reordered[1], reordered[0]
	r := row(0, 2) // feature 0 sits in column 1 now
	named, _ := json.Marshal(PredictRequest{FeatureNames: reordered, Rows: [][]Value{r}})
	resp, body = post(t, srv.URL, string(named))
	var pn PredictResponse
	json.Unmarshal(body, &pn)
	if resp.StatusCode != 200 || pn.Predictions[0].Probability != up.Probability {
		t.Fatalf("named columns: %d %s, want the same answer as in model order", resp.StatusCode, body)
	}

	nums := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]" }
	withAt := func(k int, v string) string {
		parts := strings.Split(strings.Trim(nums(width), "[]"), ",")
		parts[k] = v
		return "[" + strings.Join(parts, ",") + "]"
	}
	cases := map[string]struct {
		body   string
		status int
		field  string
	}{
		"no rows":         {`{"rows":[]}`, 400, "rows"},
		"short row":       {`{"rows":[` + nums(3) + `]}`, 400, "rows[0]"},
		"NaN string":      {`{"rows":[` + nums(width) + `,` + withAt(7, `"NaN"`) + `]}`, 400, "rows[1][7]"},
		"null":            {`{"rows":[` + withAt(2, `null`) + `]}`, 400, "rows[0][2]"},
		"infinity":        {`{"rows":[` + withAt(0, `"-Infinity"`) + `]}`, 400, "rows[0][0]"},
		"overflow":        {`{"rows":[` + withAt(0, `1e999`) + `]}`, 400, ""},
		"word":            {`{"rows":[` + withAt(0, `"seven"`) + `]}`, 400, ""},
		"unknown field":   {`{"rowz":[]}`, 400, "rowz"},
		"unknown version": {`{"model_version":"v99","rows":[` + nums(width) + `]}`, 404, "model_version"},
		"unknown feature": {`{"feature_names":["nope"],"rows":[[1]]}`, 400, "feature_names[0]"},
		"missing feature": {`{"feature_names":["ret_1"],"rows":[[1]]}`, 400, "feature_names"},
		"not json":        {`{"rows":`, 400, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := post(t, srv.URL, tc.body)
			var p httpx.Problem
			json.Unmarshal(body, &p)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != httpx.ProblemContentType {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Fatalf("errors %+v, want field %q", p.Errors, tc.field)
			}
		})
	}
	// A thousand NaNs produce a bounded list of complaints.
	var many [][]Value
	for range 1000 {
		many = append(many, row(math.NaN()))
	}
	var sb strings.Builder
	sb.WriteString(`{"rows":[`)
	for i := range many {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(withAt(0, "null"))
	}
	sb.WriteString(`]}`)
	resp, body = post(t, srv.URL, sb.String())
	var p httpx.Problem
	json.Unmarshal(body, &p)
	if resp.StatusCode != 400 || len(p.Errors) != maxFieldErrors {
		t.Fatalf("%d, %d errors", resp.StatusCode, len(p.Errors))
	}
}

// Requests keep flowing while the promoted model changes: none fails, none mixes models,
// and the answers move from the old version to the new one.
func TestHotSwapDropsNoRequest(t *testing.T) {
	f := newFixture(t)
	v1 := f.registerAndPromote(t, logRegArtifact(t, 1))
	s, srv := f.startService(t, RunOptions{Poll: time.Hour}) // only the announcement can swap
	waitUntil(t, "load", func() bool { return s.Current() != nil })
	v2, err := f.reg.Register(context.Background(), logRegArtifact(t, -1), registry.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(PredictRequest{Rows: [][]Value{row(2)}})
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		seen     sync.Map
		stop     = make(chan struct{})
	)
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(srv.URL+"/v1/predict", "application/json", bytes.NewReader(body))
				if err != nil {
					failures.Add(1)
					continue
				}
				var pr PredictResponse
				err = json.NewDecoder(resp.Body).Decode(&pr)
				resp.Body.Close()
				if resp.StatusCode != 200 || err != nil {
					failures.Add(1)
					continue
				}
				// v1 calls feature 0 = 2 up, v2 (trained on the opposite sign) down.
				want := map[string]string{v1.Version: ClassUp, v2.Version: ClassDown}[pr.ModelVersion]
				if pr.Predictions[0].Class != want {
					failures.Add(1)
				}
				seen.Store(pr.ModelVersion, true)
			}
		})
	}
	waitUntil(t, "traffic on v1", func() bool { _, ok := seen.Load(v1.Version); return ok })
	if _, err := f.reg.Promote(context.Background(), v2.Version); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "traffic on v2", func() bool { _, ok := seen.Load(v2.Version); return ok })
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d requests failed or got a wrong answer during the swap", n)
	}
	// Rolling back is announced the same way.
	if _, err := f.reg.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "rollback to v1", func() bool { return s.Current().Version.Version == v1.Version })
}

// A pinned version is served beside the promoted one.
func TestPinnedVersion(t *testing.T) {
	f := newFixture(t)
	v1 := f.registerAndPromote(t, logRegArtifact(t, 1))
	v2, _ := f.reg.Register(context.Background(), logRegArtifact(t, -1), registry.Meta{})
	_, srv := f.startService(t, RunOptions{})
	body, _ := json.Marshal(PredictRequest{ModelVersion: v2.Version, Rows: [][]Value{row(2)}})
	var pr PredictResponse
	waitUntil(t, "an answer", func() bool {
		resp, b := post(t, srv.URL, string(body))
		return resp.StatusCode == 200 && json.Unmarshal(b, &pr) == nil
	})
	if pr.ModelVersion != v2.Version || pr.Predictions[0].Class != ClassDown {
		t.Fatalf("pinned %s answered %+v (promoted is %s)", v2.Version, pr, v1.Version)
	}
}

// A promoted artifact that fails its hash check is never served: the service stays unready
// (or keeps its previous model) until a good version is promoted.
func TestCorruptPromotionIsRefused(t *testing.T) {
	f := newFixture(t)
	v1 := f.registerAndPromote(t, logRegArtifact(t, 1))
	f.rdb.Set(context.Background(), "ml:registry:artifact:"+v1.Version, `{"schema_version":1}`, 0)
	s, _ := f.startService(t, RunOptions{Poll: 20 * time.Millisecond})
	waitUntil(t, "the load to fail", func() bool {
		err := s.CheckHealth(context.Background())
		return err != nil && strings.Contains(err.Error(), "cannot be loaded")
	})
	time.Sleep(100 * time.Millisecond) // several more polls: it must not come up on its own
	if s.Current() != nil {
		t.Fatal("a corrupt artifact was served")
	}
	v2 := f.registerAndPromote(t, logRegArtifact(t, -1))
	waitUntil(t, "the good version", func() bool { return s.Current() != nil && s.Current().Version.Version == v2.Version })
}

func TestBootstrapWhenTheRegistryIsEmpty(t *testing.T) {
	f := newFixture(t)
	var calls atomic.Int32
	s, _ := f.startService(t, RunOptions{Poll: time.Hour, Bootstrap: func(ctx context.Context) (registry.Version, error) {
		calls.Add(1)
		v, err := f.reg.Register(ctx, logRegArtifact(t, 1), registry.Meta{Note: "bootstrap"})
		if err != nil {
			return v, err
		}
		return f.reg.Promote(ctx, v.Version)
	}})
	waitUntil(t, "the bootstrap model", func() bool { return s.Current() != nil })
	if calls.Load() != 1 {
		t.Fatalf("bootstrap ran %d times", calls.Load())
	}
}

func TestClientMapsEveryFailure(t *testing.T) {
	f := newFixture(t)
	_, srv := f.startService(t, RunOptions{Poll: 20 * time.Millisecond})
	c := NewClient(srv.URL, nil, 5*time.Second)
	ctx := context.Background()
	req := PredictRequest{Rows: [][]Value{row(1)}}

	var he *httpx.Error
	_, err := c.Predict(ctx, req)
	if !errors.As(err, &he) || he.Code != httpx.CodeUnavailable || he.RetryAfter < time.Second {
		t.Fatalf("no model loaded: %v", err)
	}
	v := f.registerAndPromote(t, logRegArtifact(t, 1))
	waitUntil(t, "load", func() bool { _, err := c.Predict(ctx, req); return err == nil })
	resp, err := c.Predict(ctx, req)
	if err != nil || resp.ModelVersion != v.Version {
		t.Fatalf("%+v %v", resp, err)
	}
	_, err = c.Predict(ctx, PredictRequest{ModelVersion: "v42", Rows: req.Rows})
	if !errors.As(err, &he) || he.Code != httpx.CodeNotFound {
		t.Fatalf("unknown version: %v", err)
	}
	_, err = c.Predict(ctx, PredictRequest{Rows: [][]Value{{1, 2}}})
	if !errors.As(err, &he) || he.Code != httpx.CodeInvalid || len(he.Fields) == 0 {
		t.Fatalf("bad row: %v", err)
	}

	// Nobody listening: unavailable with Retry-After, never an answer.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	_, err = NewClient(dead, nil, time.Second).Predict(ctx, req)
	if !errors.As(err, &he) || he.Code != httpx.CodeUnavailable || he.RetryAfter == 0 {
		t.Fatalf("dead ensemble: %v", err)
	}

	// The local platform's way in: any host, dialled at one address.
	viaDial := NewClient(ServiceURL("day-trade"), NewTransport(strings.TrimPrefix(srv.URL, "http://")), 5*time.Second)
	if _, err := viaDial.Predict(ctx, req); err != nil {
		t.Fatalf("through UPSTREAM_DIAL_ADDR: %v", err)
	}

	// A deadline shorter than the answer: unavailable, not a hang.
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})}
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	go slow.Serve(sl)
	defer slow.Close()
	_, err = NewClient("http://"+sl.Addr().String(), nil, 50*time.Millisecond).Predict(ctx, req)
	if !errors.As(err, &he) || he.Code != httpx.CodeUnavailable || !strings.Contains(he.Message, "in time") {
		t.Fatalf("slow ensemble: %v", err)
	}
}

func TestModelsListsVersions(t *testing.T) {
	f := newFixture(t)
	v := f.registerAndPromote(t, logRegArtifact(t, 1))
	s, srv := f.startService(t, RunOptions{})
	waitUntil(t, "load", func() bool { return s.Current() != nil })
	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m modelsResponse
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m.Serving == nil || m.Serving.Version != v.Version ||
		len(m.Versions) != 1 || len(m.Serving.Features) != len(features.Names()) {
		t.Fatalf("%+v %v", m, err)
	}
}
