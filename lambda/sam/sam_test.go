package sam

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/manifests"
)

var update = flag.Bool("update", false, "rewrite lambda/template.yaml")

const committed = "../template.yaml"

func TestGolden(t *testing.T) {
	want, err := Template(functions.Catalog(), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(committed, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(committed)
	if err != nil {
		t.Fatalf("%v (generate it: go run ./lambda/cmd/template)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("lambda/template.yaml differs from a fresh run; regenerate with go run ./lambda/cmd/template (or go test ./lambda/sam -update)")
	}
}

// fixture has every shape the generator handles: routes with chi regexps and wildcards, a
// warm service, subscriptions with and without paths and sources, the tick subscriber.
func fixture() []functions.Function {
	scale0 := functions.Scaling{MinScale: 0, MaxScale: 10, Concurrency: 100, Target: 80, IdleWindow: time.Minute}
	readers := []string{functions.RoleViewer}
	return []functions.Function{
		{Name: "gateway", Kind: functions.KindGateway, Scaling: functions.Scaling{MinScale: 1, MaxScale: 10}, Timeout: time.Minute, KeyPrefix: "gw"},
		{
			Name: "ensemble", Kind: functions.KindService, Description: "warm model",
			Scaling: functions.Scaling{MinScale: 2, MaxScale: 4, Concurrency: 8}, Timeout: 30 * time.Second, KeyPrefix: "ml",
		},
		{
			Name: "execution-trade", Kind: functions.KindFunction, Description: "paper trade",
			Routes: []functions.Route{
				{Method: "POST", Path: "/api/v1/execution/trade", Roles: readers},
				{Method: "GET", Path: "/api/v1/execution/orders/{id:[0-9a-f-]+}", Roles: readers},
				{Method: "GET", Path: "/api/v1/execution/files/*", Roles: readers},
			},
			Scaling: scale0, Timeout: 90 * time.Second, KeyPrefix: "exec",
			Env: map[string]string{"PAPER_FEE_BPS": "10"}, Secrets: []string{"BROKER_TOKEN"},
		},
		{
			Name: "ml-batch-worker", Kind: functions.KindFunction, Description: "batch",
			Events: []functions.Subscription{
				{Type: "com.daytrade.ml.batch.requested", Source: "/day-trade/ml-batch-predict"},
				{Type: "com.daytrade.ml.accuracy.degraded", Path: "/events/degraded"},
			},
			Scaling: scale0, Timeout: 10 * time.Minute, KeyPrefix: "ml",
		},
		{
			Name: "execution-scheduler", Kind: functions.KindFunction, Description: "ticks",
			Events:  []functions.Subscription{{Type: "com.daytrade.execution.tick", Path: "/events/tick"}},
			Scaling: scale0, Timeout: 2 * time.Minute, KeyPrefix: "exec",
		},
	}
}

// decode reads a generated template back as plain data.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(Header)) {
		t.Fatal("no generated header")
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks m along path and fails when a step is missing.
func at(t *testing.T, m any, path ...string) any {
	t.Helper()
	for i, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("%s is not an object", strings.Join(path[:i], "."))
		}
		if m, ok = mm[p]; !ok {
			t.Fatalf("%s missing", strings.Join(path[:i+1], "."))
		}
	}
	return m
}

// fixtureOptions tick on weekdays in market hours, to exercise the cron conversion.
func fixtureOptions() Options {
	o := DefaultOptions()
	o.Schedules = []Schedule{{Name: "execution-tick", Cron: "* 9-15 * * 1-5", Timezone: "Asia/Tokyo",
		Type: "com.daytrade.execution.tick", Data: `{"schedule":"execution-tick"}`}}
	return o
}

func TestTemplateShapes(t *testing.T) {
	b, err := Template(fixture(), fixtureOptions())
	if err != nil {
		t.Fatal(err)
	}
	tpl := decode(t, b)
	res := at(t, tpl, "Resources").(map[string]any)

	t.Run("one function per catalog entry but the gateway", func(t *testing.T) {
		var fns []string
		for id, r := range res {
			if at(t, r, "Type") == "AWS::Serverless::Function" {
				fns = append(fns, id)
			}
		}
		slices.Sort(fns)
		want := []string{"EnsembleFunction", "ExecutionSchedulerFunction", "ExecutionTradeFunction", "MlBatchWorkerFunction"}
		if !slices.Equal(fns, want) {
			t.Fatalf("functions %v, want %v", fns, want)
		}
		g := at(t, tpl, "Globals", "Function").(map[string]any)
		if g["Runtime"] != "provided.al2023" || g["Handler"] != "bootstrap" || fmt.Sprint(g["Architectures"]) != "[arm64]" {
			t.Errorf("globals %v", g)
		}
	})
	t.Run("routes", func(t *testing.T) {
		evs := at(t, res, "ExecutionTradeFunction", "Properties", "Events").(map[string]any)
		got := map[string]string{}
		for name, e := range evs {
			if at(t, e, "Type") != "HttpApi" {
				t.Errorf("%s: type %v", name, at(t, e, "Type"))
			}
			p := at(t, e, "Properties")
			got[fmt.Sprint(at(t, p, "Method"), " ", at(t, p, "Path"))] = name
			if ms := at(t, p, "TimeoutInMillis").(float64); ms != 30000 {
				t.Errorf("%s: timeout %vms, want HTTP API's 30000 cap for a 90s function", name, ms)
			}
			if at(t, p, "PayloadFormatVersion") != "2.0" {
				t.Errorf("%s: payload format %v", name, at(t, p, "PayloadFormatVersion"))
			}
		}
		want := map[string]string{
			"POST /api/v1/execution/trade":         "PostExecutionTrade",
			"GET /api/v1/execution/orders/{id}":    "GetExecutionOrdersId",
			"GET /api/v1/execution/files/{proxy+}": "GetExecutionFilesProxy",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("routes %v, want %v", got, want)
		}
		p := at(t, res, "ExecutionTradeFunction", "Properties")
		if at(t, p, "Timeout").(float64) != 90 || at(t, p, "MemorySize").(float64) != 256 {
			t.Errorf("timeout %v memory %v", at(t, p, "Timeout"), at(t, p, "MemorySize"))
		}
		if at(t, p, "CodeUri") != "../dist/lambda/execution-trade.zip" {
			t.Errorf("CodeUri %v", at(t, p, "CodeUri"))
		}
	})
	t.Run("environment holds settings and secret references, never secrets", func(t *testing.T) {
		env := at(t, res, "ExecutionTradeFunction", "Properties", "Environment", "Variables").(map[string]any)
		if env["PAPER_FEE_BPS"] != "10" {
			t.Errorf("setting missing: %v", env)
		}
		for name, want := range map[string]string{
			"REDIS_URL":    "{{resolve:secretsmanager:${SecretsPrefix}/redis-execution-trade:SecretString:url}}",
			"BROKER_TOKEN": "{{resolve:secretsmanager:${SecretsPrefix}/platform-secrets:SecretString:BROKER_TOKEN}}",
		} {
			if got := at(t, env, name, "Fn::Sub"); got != want {
				t.Errorf("%s = %v, want the dynamic reference %s", name, got, want)
			}
		}
	})
	t.Run("subscriptions become EventBridge rules", func(t *testing.T) {
		p := at(t, res, "MlBatchWorkerFunction", "Properties").(map[string]any)
		evs := at(t, p, "Events").(map[string]any)
		patterns := map[string]string{}
		for name, e := range evs {
			if at(t, e, "Type") != "EventBridgeRule" {
				t.Fatalf("%s: %v", name, at(t, e, "Type"))
			}
			pat, _ := json.Marshal(at(t, e, "Properties", "Pattern"))
			patterns[name] = string(pat)
			if at(t, e, "Properties", "RetryPolicy", "MaximumRetryAttempts").(float64) != 5 {
				t.Errorf("%s: retry policy %v", name, at(t, e, "Properties", "RetryPolicy"))
			}
			if at(t, e, "Properties", "EventBusName", "Ref") != "EventBus" {
				t.Errorf("%s: bus %v", name, at(t, e, "Properties", "EventBusName"))
			}
		}
		want := map[string]string{
			"OnMlBatchRequested":   `{"detail-type":["com.daytrade.ml.batch.requested"],"source":["/day-trade/ml-batch-predict"]}`,
			"OnMlAccuracyDegraded": `{"detail-type":["com.daytrade.ml.accuracy.degraded"]}`,
		}
		if !reflect.DeepEqual(patterns, want) {
			t.Errorf("patterns %v, want %v", patterns, want)
		}
		if at(t, p, "DeadLetterQueue", "TargetArn", "Fn::GetAtt").([]any)[0] != "DeadLetterQueue" {
			t.Errorf("no dead-letter queue: %v", p["DeadLetterQueue"])
		}
		if got := at(t, p, "Environment", "Variables", EventPathsEnv); got != "com.daytrade.ml.accuracy.degraded:/events/degraded" {
			t.Errorf("%s = %v", EventPathsEnv, got)
		}
	})
	t.Run("ticks are schedules shaped like the PingSource's event", func(t *testing.T) {
		p := at(t, res, "ExecutionSchedulerFunction", "Properties")
		tick := at(t, p, "Events", "TickExecutionTick", "Properties")
		if got := at(t, tick, "ScheduleExpression"); got != "cron(* 9-15 ? * 2-6 *)" {
			t.Errorf("schedule %v, want weekdays 2-6 in EventBridge's numbering", got)
		}
		if at(t, tick, "ScheduleExpressionTimezone") != "Asia/Tokyo" {
			t.Errorf("timezone %v", at(t, tick, "ScheduleExpressionTimezone"))
		}
		raw := at(t, tick, "Input").(string)
		for _, attr := range []string{"<aws.scheduler.execution-id>", "<aws.scheduler.scheduled-time>"} {
			if !strings.Contains(raw, attr) {
				t.Errorf("input %s lacks %s verbatim; the Scheduler would not fill it in", raw, attr)
			}
		}
		var input map[string]any
		if err := json.Unmarshal([]byte(raw), &input); err != nil {
			t.Fatal(err)
		}
		if input["detail-type"] != PingEventType || input["source"] != PingSourceSource("day-trade", "execution-tick") ||
			input["id"] != "<aws.scheduler.execution-id>" || fmt.Sprint(input["detail"]) != "map[schedule:execution-tick]" {
			t.Errorf("input %v", input)
		}
		paths := at(t, p, "Environment", "Variables", EventPathsEnv)
		if paths != "com.daytrade.execution.tick:/events/tick,dev.knative.sources.ping:/events/tick" {
			t.Errorf("%s = %v", EventPathsEnv, paths)
		}
	})
	t.Run("warm service", func(t *testing.T) {
		p := at(t, res, "EnsembleFunction", "Properties")
		if at(t, p, "ProvisionedConcurrencyConfig", "ProvisionedConcurrentExecutions").(float64) != 2 || at(t, p, "AutoPublishAlias") != "live" {
			t.Errorf("service not kept warm: %v", p)
		}
		if at(t, p, "MemorySize").(float64) != 1024 {
			t.Errorf("memory %v", at(t, p, "MemorySize"))
		}
		if _, ok := p.(map[string]any)["Events"]; ok {
			t.Error("a service has no public routes")
		}
	})
}

func TestTemplateRejects(t *testing.T) {
	tests := map[string]struct {
		edit func(fs []functions.Function, o *Options)
		want string
	}{
		"invalid catalog": {func(fs []functions.Function, _ *Options) { fs[1].Scaling.MinScale = 0 }, "min-scale"},
		"one type two paths": {func(fs []functions.Function, _ *Options) {
			fs[3].Events = append(fs[3].Events, functions.Subscription{Type: "com.daytrade.ml.batch.requested", Path: "/other"})
		}, "one path"},
		"path with a comma": {func(fs []functions.Function, _ *Options) { fs[3].Events[1].Path = "/a,b" }, "hold no"},
		"no memory":         {func(_ []functions.Function, o *Options) { delete(o.Memory, functions.KindService) }, "memory"},
		"both day fields":   {func(_ []functions.Function, o *Options) { o.Schedules[0].Cron = "0 9 1 * 1" }, "both day"},
		"bad tick data":     {func(_ []functions.Function, o *Options) { o.Schedules[0].Data = "{" }, "not JSON"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs, o := fixture(), fixtureOptions()
			tc.edit(fs, &o)
			if _, err := Template(fs, o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestSchedulerCron(t *testing.T) {
	tests := map[string]string{
		"* 9-15 * * 1-5":   "cron(* 9-15 ? * 2-6 *)",
		"*/5 * * * *":      "cron(*/5 * * * ? *)",
		"0 0 1 * *":        "cron(0 0 1 * ? *)",
		"30 8 * * 0,6":     "cron(30 8 ? * 1,7 *)",
		"0 12 * * MON-FRI": "cron(0 12 ? * MON-FRI *)",
		"0 12 * * */2":     "cron(0 12 ? * */2 *)",
		"0 12 * * 1-5/2":   "cron(0 12 ? * 2-6/2 *)",
		"0 12 * * 7":       "cron(0 12 ? * 1 *)",
	}
	for in, want := range tests {
		if got, err := schedulerCron(in); err != nil || got != want {
			t.Errorf("schedulerCron(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"* * *", "0 12 * * 5-7", "0 12 * * 9", "0 0 1 * 1", "0 0 $ * *"} {
		if got, err := schedulerCron(bad); err == nil {
			t.Errorf("schedulerCron(%q) = %q, want an error", bad, got)
		}
	}
}

// TestSchedulesMatchKnative keeps the Lambda ticks the same as the Knative PingSources: the
// same cron, zone, data, CloudEvent type and source.
func TestSchedulesMatchKnative(t *testing.T) {
	var want []Schedule
	for _, s := range manifests.DefaultSchedules() {
		want = append(want, Schedule(s))
	}
	if got := DefaultSchedules(); !reflect.DeepEqual(got, want) {
		t.Errorf("sam.DefaultSchedules %+v, knative %+v", got, want)
	}
	if PingEventType != manifests.PingEventType {
		t.Errorf("ping type %q, knative %q", PingEventType, manifests.PingEventType)
	}
	if a, b := PingSourceSource("ns", "x"), manifests.PingSourceSource("ns", "x"); a != b {
		t.Errorf("ping source %q, knative %q", a, b)
	}
}
