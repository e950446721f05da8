package lambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/redis/go-redis/v9"

	platformevents "github.com/day-trade/platform/events"
	"github.com/day-trade/platform/lambda/bundle"
	"github.com/day-trade/platform/lambda/runtimeapi"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// buildBootstrap packages pkg exactly as `make lambda` does, but for this machine's
// architecture, and unpacks the zip as Lambda would: the test runs what would be deployed.
func buildBootstrap(t *testing.T, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a bootstrap binary (tens of seconds on a cold build cache)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	zipPath, err := bundle.Package(ctx, bundle.Options{Dir: "..", GOOS: goruntime.GOOS, GOARCH: goruntime.GOARCH}, name, pkg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := bundle.Extract(zipPath, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// syncBuffer collects a process's stderr for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	err    error
}

// start runs bin with only env (plus PATH), as a Lambda instance or a Knative container
// would, and kills it when the test ends.
func start(t *testing.T, bin string, env ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_LEVEL=debug"}, env...)
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, p.stderr.String())
		}
	})
	return p
}

// startLambda runs bin as a Lambda instance against a fake Runtime API and waits until its
// init is over (its first /next) or it exits.
func startLambda(t *testing.T, bin string, env ...string) (*runtimeapi.Server, *process) {
	t.Helper()
	api := runtimeapi.New(30 * time.Second)
	t.Cleanup(api.Close)
	p := start(t, bin, append([]string{
		"AWS_LAMBDA_RUNTIME_API=" + api.Addr(),
		"AWS_LAMBDA_FUNCTION_NAME=" + t.Name(),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_REGION=ap-northeast-1",
	}, env...)...)
	select {
	case <-api.Polled():
	case <-p.exited:
		t.Fatalf("bootstrap exited during init (%v): %s", p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("bootstrap never asked for an invocation: %s", p.stderr.String())
	}
	return api, p
}

// startHTTP runs bin as Knative would and waits until it is ready.
func startHTTP(t *testing.T, bin string, env ...string) string {
	t.Helper()
	port := redistest.FreePort(t)
	p := start(t, bin, append([]string{"PORT=" + strconv.Itoa(port), "BIND_ADDR=127.0.0.1", "K_SERVICE=" + t.Name()}, env...)...)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("function exited (%v): %s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("function never got ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func apiGatewayV2(method, path, query string) []byte {
	b, _ := json.Marshal(events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: method + " " + path, RawPath: path, RawQueryString: query,
		Headers: map[string]string{"accept": "application/json", "x-request-id": "rt-1"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID: "123456789012", APIID: "api", DomainName: "api.execute-api.ap-northeast-1.amazonaws.com",
			RequestID: "rt-1", Stage: "$default", RouteKey: method + " " + path, TimeEpoch: 1767225600000,
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1", SourceIP: "192.0.2.1", UserAgent: "test"},
		},
	})
	return b
}

func eventBridge(id, detailType, source, detail string) []byte {
	b, _ := json.Marshal(events.EventBridgeEvent{
		Version: "0", ID: id, DetailType: detailType, Source: source, AccountID: "123456789012",
		Time: time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), Region: "ap-northeast-1", Resources: []string{},
		Detail: json.RawMessage(detail),
	})
	return b
}

func invoke(t *testing.T, api *runtimeapi.Server, payload []byte) runtimeapi.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := api.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func invokeHTTP(t *testing.T, api *runtimeapi.Server, payload []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	res := invoke(t, api, payload)
	if res.Error != nil {
		t.Fatalf("invocation failed: %+v", res.Error)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(res.Payload, &resp); err != nil {
		t.Fatalf("response %s: %v", res.Payload, err)
	}
	return resp
}

func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", "rt-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestBootstrapRoundTrip(t *testing.T) {
	bin := buildBootstrap(t, "fixture", "./lambda/testdata/fixture")
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	keys := store.NewKeys("fixture")
	ctx := context.Background()
	if err := rdb.Set(ctx, keys.Key("greeting"), "konnichiwa", 0).Err(); err != nil {
		t.Fatal(err)
	}
	base := startHTTP(t, bin, "REDIS_URL="+rs.URL())
	api, proc := startLambda(t, bin, "REDIS_URL="+rs.URL())

	t.Run("API Gateway v2 answers as the HTTP function does", func(t *testing.T) {
		for _, tc := range []struct{ path, query string }{
			{"/api/v1/fixture/greetings/taro", "lang=ja"},
			{"/api/v1/fixture/nowhere", ""}, // the same 404 problem
		} {
			want, wantBody := httpGet(t, base+tc.path+"?"+tc.query)
			got := invokeHTTP(t, api, apiGatewayV2("GET", tc.path, tc.query))
			if got.StatusCode != want.StatusCode || got.Body != wantBody {
				t.Errorf("%s: lambda %d %q; http %d %q", tc.path, got.StatusCode, got.Body, want.StatusCode, wantBody)
			}
			if ct := want.Header.Get("Content-Type"); got.Headers["Content-Type"] != ct {
				t.Errorf("%s: lambda content type %q, http %q", tc.path, got.Headers["Content-Type"], ct)
			}
		}
		if _, body := httpGet(t, base+"/api/v1/fixture/greetings/taro?lang=ja"); !strings.Contains(body, `"konnichiwa, taro"`) {
			t.Errorf("the HTTP function did not read Redis: %s", body)
		}
	})

	t.Run("EventBridge event reaches the CloudEvents receiver", func(t *testing.T) {
		payload := eventBridge("eb-42", platformevents.TypeExecutionTick, platformevents.SourceExecutionScheduler, `{"schedule":"market-open","at":"2026-01-05T00:00:00Z"}`)
		res := invoke(t, api, payload)
		if res.Error != nil {
			t.Fatalf("invocation failed: %+v", res.Error)
		}
		got, err := rdb.HGetAll(ctx, keys.Key("ticks", "eb-42")).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"type": platformevents.TypeExecutionTick, "source": platformevents.SourceExecutionScheduler, "schedule": "market-open"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("recorded %v, want %v", got, want)
				break
			}
		}
	})

	t.Run("poison event is an invocation error", func(t *testing.T) {
		res := invoke(t, api, eventBridge("eb-43", platformevents.TypeExecutionTick, platformevents.SourceExecutionScheduler, `"not a tick"`))
		if res.Error == nil || !strings.Contains(res.Error.Message, "answered 400") {
			t.Fatalf("result %+v, want an error reporting the receiver's 400", res)
		}
		if n, err := rdb.Exists(ctx, keys.Key("ticks", "eb-43")).Result(); err != nil || n != 0 {
			t.Errorf("poison event recorded (%d, %v)", n, err)
		}
	})

	t.Run("unknown event shape is an invocation error", func(t *testing.T) {
		res := invoke(t, api, []byte(`{"Records":[{"eventSource":"aws:sqs"}]}`))
		if res.Error == nil || !strings.Contains(res.Error.Message, "unsupported event") {
			t.Fatalf("result %+v, want an unsupported-event error", res)
		}
	})

	t.Run("SIGTERM ends the instance cleanly", func(t *testing.T) {
		if goruntime.GOOS == "windows" {
			t.Skip("no SIGTERM")
		}
		if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-proc.exited:
			if proc.err != nil {
				t.Fatalf("exit: %v\n%s", proc.err, proc.stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("bootstrap did not exit after SIGTERM")
		}
	})
}

// TestDataCacheBootstrap runs a real catalog function on Lambda. It needs runtime.Run to give
// every function the Lambda mode by default (Function.Lambda nil → runtime.ServeLambda).
func TestDataCacheBootstrap(t *testing.T) {
	bin := buildBootstrap(t, "data-cache", "./functions/data-cache")
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Set(context.Background(), "data:bars:7203.T:1y:1d", "[]", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	api := runtimeapi.New(30 * time.Second)
	t.Cleanup(api.Close)
	p := start(t, bin, "AWS_LAMBDA_RUNTIME_API="+api.Addr(), "AWS_LAMBDA_FUNCTION_NAME=data-cache", "REDIS_URL="+rs.URL())
	select {
	case <-api.Polled():
	case <-p.exited:
		if strings.Contains(p.stderr.String(), "no Lambda mode") {
			t.Skip("data-cache has no Lambda mode yet: runtime.Run must default Function.Lambda to runtime.ServeLambda")
		}
		t.Fatalf("bootstrap exited during init (%v): %s", p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("bootstrap never asked for an invocation: %s", p.stderr.String())
	}
	base := startHTTP(t, bin, "REDIS_URL="+rs.URL())
	began := time.Now()
	want, wantBody := httpGet(t, base+"/api/v1/data/cache")
	got := invokeHTTP(t, api, apiGatewayV2("GET", "/api/v1/data/cache", ""))
	apart := time.Since(began)
	if got.StatusCode != want.StatusCode {
		t.Fatalf("lambda %d %q; http %d %q", got.StatusCode, got.Body, want.StatusCode, wantBody)
	}
	// Redis gives TTLs rounded to whole seconds, so the key's remaining TTL can drop by a
	// second (or more, on a slow machine) between the two calls: ttl_average_seconds may
	// differ by the time between them rounded up, plus one for the rounding. Everything else
	// must be byte for byte.
	gotRest, gotTTL := cutTTLAverage(t, got.Body)
	wantRest, wantTTL := cutTTLAverage(t, wantBody)
	if gotRest != wantRest {
		t.Fatalf("lambda %d %q; http %d %q", got.StatusCode, got.Body, want.StatusCode, wantBody)
	}
	if wantTTL <= 0 || wantTTL > time.Hour.Seconds() || math.Abs(gotTTL-wantTTL) > math.Ceil(apart.Seconds())+1 {
		t.Fatalf("ttl_average_seconds: lambda %v, http %v (the key lives 1h; the calls were %v apart)", gotTTL, wantTTL, apart)
	}
}

var ttlAverageField = regexp.MustCompile(`"ttl_average_seconds":([^,}]*)`)

// cutTTLAverage returns the stats body with its one ttl_average_seconds value blanked out,
// and that value.
func cutTTLAverage(t *testing.T, body string) (string, float64) {
	t.Helper()
	m := ttlAverageField.FindAllStringSubmatchIndex(body, -1)
	if len(m) != 1 {
		t.Fatalf("body %q: want one ttl_average_seconds, got %d", body, len(m))
	}
	v, err := strconv.ParseFloat(body[m[0][2]:m[0][3]], 64)
	if err != nil {
		t.Fatalf("body %q: ttl_average_seconds: %v", body, err)
	}
	return body[:m[0][2]] + body[m[0][3]:], v
}
