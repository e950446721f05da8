package manifests

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // PingSource time zones resolve without the host's zoneinfo

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/local"
)

// schema is an OpenAPI v3 structural schema, as much of it as eventing's CRDs use.
type schema struct {
	typ      string // object, string, integer, map (string values)
	props    map[string]*schema
	required []string
}

func objectSchema(required []string, props map[string]*schema) *schema {
	return &schema{typ: "object", props: props, required: required}
}

var (
	str    = &schema{typ: "string"}
	int32s = &schema{typ: "integer"}
	strMap = &schema{typ: "map"}

	// kReference and destination are knative.dev/pkg's duck types as the CRDs spell them.
	kReference = objectSchema([]string{"apiVersion", "kind", "name"}, map[string]*schema{
		"apiVersion": str, "kind": str, "name": str, "namespace": str,
	})
	destination = objectSchema(nil, map[string]*schema{"ref": kReference, "uri": str, "CACerts": str, "audience": str})
	delivery    = objectSchema(nil, map[string]*schema{
		"deadLetterSink": destination, "retry": int32s, "backoffPolicy": str, "backoffDelay": str,
	})
	metadata = objectSchema([]string{"name", "namespace"}, map[string]*schema{
		"name": str, "namespace": str, "labels": strMap, "annotations": strMap,
	})

	// crdSchemas are copied from knative/eventing's config/core/resources (v1), with the
	// webhook's required fields marked required.
	crdSchemas = map[string]*schema{
		"eventing.knative.dev/v1/Broker": objectSchema([]string{"apiVersion", "kind", "metadata"}, map[string]*schema{
			"apiVersion": str, "kind": str, "metadata": metadata,
			"spec": objectSchema(nil, map[string]*schema{"config": kReference, "delivery": delivery}),
		}),
		"eventing.knative.dev/v1/Trigger": objectSchema([]string{"apiVersion", "kind", "metadata", "spec"}, map[string]*schema{
			"apiVersion": str, "kind": str, "metadata": metadata,
			"spec": objectSchema([]string{"broker", "subscriber"}, map[string]*schema{
				"broker":     str,
				"filter":     objectSchema(nil, map[string]*schema{"attributes": strMap}),
				"subscriber": destination,
				"delivery":   delivery,
			}),
		}),
		"sources.knative.dev/v1/PingSource": objectSchema([]string{"apiVersion", "kind", "metadata", "spec"}, map[string]*schema{
			"apiVersion": str, "kind": str, "metadata": metadata,
			"spec": objectSchema([]string{"schedule", "sink"}, map[string]*schema{
				"schedule": str, "timezone": str, "contentType": str, "data": str, "dataBase64": str,
				"sink":        destination,
				"ceOverrides": objectSchema(nil, map[string]*schema{"extensions": strMap}),
			}),
		}),
	}
)

// check reports every field of v that s does not allow, every missing required field and
// every value of the wrong type.
func (s *schema) check(path string, v any) []string {
	var errs []string
	switch s.typ {
	case "string":
		if _, ok := v.(string); !ok {
			errs = append(errs, fmt.Sprintf("%s: want a string, got %T", path, v))
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int32(f)) {
			errs = append(errs, fmt.Sprintf("%s: want an int32, got %v", path, v))
		}
	case "map":
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want a map, got %T", path, v)}
		}
		for k, x := range m {
			if _, ok := x.(string); !ok {
				errs = append(errs, fmt.Sprintf("%s.%s: want a string, got %T", path, k, x))
			}
		}
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %T", path, v)}
		}
		for _, r := range s.required {
			if _, ok := m[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s.%s: required", path, r))
			}
		}
		for k, x := range m {
			sub, ok := s.props[k]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s.%s: unknown field", path, k))
				continue
			}
			errs = append(errs, sub.check(path+"."+k, x)...)
		}
	}
	return errs
}

func TestSchemaCheckCatchesMistakes(t *testing.T) {
	s := crdSchemas["eventing.knative.dev/v1/Trigger"]
	good := `{"apiVersion":"eventing.knative.dev/v1","kind":"Trigger","metadata":{"name":"a","namespace":"b"},"spec":{"broker":"default","subscriber":{"ref":{"apiVersion":"v1","kind":"Service","name":"x"}}}}`
	tests := map[string]struct {
		doc     string
		wantErr string
	}{
		"valid":              {doc: good},
		"unknown field":      {doc: strings.Replace(good, `"broker"`, `"brokr"`, 1), wantErr: "spec.brokr: unknown field"},
		"missing subscriber": {doc: strings.Replace(good, `"subscriber"`, `"delivery"`, 1), wantErr: "spec.subscriber: required"},
		"ref without name":   {doc: strings.Replace(good, `"name":"x"`, `"namespace":"x"`, 1), wantErr: "spec.subscriber.ref.name: required"},
		"retry not a number": {doc: strings.Replace(good, `"broker":"default"`, `"broker":"default","delivery":{"retry":"5"}`, 1), wantErr: "retry: want an int32"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var v any
			if err := yaml.Unmarshal([]byte(tt.doc), &v); err != nil {
				t.Fatal(err)
			}
			errs := strings.Join(s.check("trigger", v), "; ")
			if tt.wantErr == "" && errs != "" || !strings.Contains(errs, tt.wantErr) {
				t.Fatalf("check = %q, want %q", errs, tt.wantErr)
			}
		})
	}
}

// eventing returns the Broker, Triggers and PingSources after checking every eventing
// document against its CRD's schema and decoding it strictly.
func eventing(t *testing.T, files map[string][]byte) ([]Broker, []Trigger, []PingSource) {
	t.Helper()
	var (
		brokers []Broker
		trigs   []Trigger
		pings   []PingSource
	)
	objs := objects(t, files, "base/")
	for _, kind := range []string{"Broker", "Trigger", "PingSource"} {
		for _, o := range objs[kind] {
			s, ok := crdSchemas[o.APIVersion+"/"+o.Kind]
			if !ok {
				t.Fatalf("%s: no schema for %s/%s", o.path, o.APIVersion, o.Kind)
			}
			var v any
			if err := yaml.Unmarshal(o.raw, &v); err != nil {
				t.Fatal(err)
			}
			for _, e := range s.check(o.Kind, v) {
				t.Errorf("%s: %s", o.path, e)
			}
			switch kind {
			case "Broker":
				var b Broker
				strict(t, o, &b)
				brokers = append(brokers, b)
			case "Trigger":
				var tr Trigger
				strict(t, o, &tr)
				trigs = append(trigs, tr)
			case "PingSource":
				var p PingSource
				strict(t, o, &p)
				pings = append(pings, p)
			}
		}
	}
	return brokers, trigs, pings
}

var (
	isoDurationRE = regexp.MustCompile(`^PT\d+(\.\d+)?S$`)
	ceAttributeRE = regexp.MustCompile(`^[a-z0-9]+$`) // eventing's Trigger webhook rule
)

// checkDelivery applies eventing's DeliverySpec webhook rules; Destinations go through
// knative.dev/pkg's own Validate, which eventing calls.
func checkDelivery(ctx context.Context, where string, d *DeliverySpec) []string {
	var errs []string
	if d == nil {
		return []string{where + ": no delivery"}
	}
	if d.Retry == nil || *d.Retry < 1 {
		errs = append(errs, where+": no retries")
	}
	if d.BackoffPolicy == nil || (*d.BackoffPolicy != "exponential" && *d.BackoffPolicy != "linear") {
		errs = append(errs, where+": backoffPolicy")
	} else if *d.BackoffPolicy != "exponential" {
		errs = append(errs, where+": backoff is not exponential")
	}
	if d.BackoffDelay == nil || !isoDurationRE.MatchString(*d.BackoffDelay) {
		errs = append(errs, where+": backoffDelay is not an ISO 8601 duration")
	}
	if d.DeadLetterSink != nil {
		if fe := d.DeadLetterSink.Validate(ctx); fe != nil {
			errs = append(errs, fmt.Sprintf("%s: deadLetterSink: %v", where, fe))
		}
	}
	return errs
}

func eventingContext(ns string) context.Context {
	return apis.WithinParent(apis.WithinCreate(context.Background()), metav1.ObjectMeta{Name: "parent", Namespace: ns})
}

func TestBrokerAndTriggers(t *testing.T) {
	opts := DefaultOptions()
	ctx := eventingContext(opts.Namespace)
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			files := mustGenerate(t, fs())
			cat := byName(fs())
			_, hasDLS := cat[DeadLetter]
			svcNames := map[string]bool{}
			for _, svc := range services(t, files) {
				svcNames[svc.Name] = true
			}
			brokers, trigs, _ := eventing(t, files)
			if len(brokers) != 1 || brokers[0].Name != opts.Broker || brokers[0].Annotations["eventing.knative.dev/broker.class"] == "" {
				t.Fatalf("want one Broker %q with a class, got %+v", opts.Broker, brokers)
			}
			for _, e := range checkDelivery(ctx, "Broker", brokers[0].Spec.Delivery) {
				t.Error(e)
			}
			if got := brokers[0].Spec.Delivery.DeadLetterSink != nil; got != hasDLS {
				t.Errorf("Broker dead-letter sink set=%v, catalog has %s=%v", got, DeadLetter, hasDLS)
			}

			// Every catalog subscription has exactly one Trigger with its exact filter.
			want := map[string]int{}
			for _, f := range fs() {
				for _, e := range f.Events {
					want[fmt.Sprintf("%s %s %s %s", f.Name, e.Type, e.Source, cmpOrSlash(e.Path))]++
				}
			}
			got := map[string]int{}
			names := map[string]bool{}
			for _, tr := range trigs {
				if names[tr.Name] {
					t.Errorf("Trigger %s: duplicate name", tr.Name)
				}
				names[tr.Name] = true
				where := "Trigger " + tr.Name
				if tr.Spec.Broker != opts.Broker {
					t.Errorf("%s: broker %q", where, tr.Spec.Broker)
				}
				for k := range tr.Spec.Filter.Attributes {
					if !ceAttributeRE.MatchString(k) {
						t.Errorf("%s: filter attribute %q", where, k)
					}
				}
				ref := tr.Spec.Subscriber.Ref
				if fe := tr.Spec.Subscriber.Validate(ctx); fe != nil {
					t.Errorf("%s: subscriber: %v", where, fe)
				}
				if fe := ref.Validate(ctx); fe != nil {
					t.Errorf("%s: subscriber ref: %v", where, fe)
				}
				if ref.APIVersion != "serving.knative.dev/v1" || ref.Kind != "Service" || !svcNames[ref.Name] {
					t.Errorf("%s: subscriber %+v is not a generated Knative Service", where, ref)
				}
				for _, e := range checkDelivery(ctx, where, tr.Spec.Delivery) {
					t.Error(e)
				}
				dls := tr.Spec.Delivery.DeadLetterSink
				switch {
				case ref.Name == DeadLetter && dls != nil:
					t.Errorf("%s: the dead-letter function's own Trigger dead-letters to itself", where)
				case ref.Name != DeadLetter && hasDLS && (dls == nil || dls.Ref == nil || dls.Ref.Name != DeadLetter || dls.Ref.Kind != "Service"):
					t.Errorf("%s: dead-letter sink %+v, want the %s Service", where, dls, DeadLetter)
				case !hasDLS && dls != nil:
					t.Errorf("%s: dead-letter sink without a %s function", where, DeadLetter)
				}
				attrs := tr.Spec.Filter.Attributes
				if attrs["type"] == PingEventType {
					continue // checked in TestPingSources
				}
				if len(attrs) != len(slices.DeleteFunc([]string{"type", attrs["source"]}, func(s string) bool { return s == "" })) {
					t.Errorf("%s: filter %v has more than type and source", where, attrs)
				}
				got[fmt.Sprintf("%s %s %s %s", ref.Name, attrs["type"], attrs["source"], tr.Spec.Subscriber.URI.Path)]++
			}
			for k, n := range want {
				if got[k] != n {
					t.Errorf("subscription %q: %d Triggers, want %d", k, got[k], n)
				}
			}
			for k, n := range got {
				if want[k] != n {
					t.Errorf("Trigger %q has no catalog subscription", k)
				}
			}
		})
	}
}

func cmpOrSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// cronField checks one field of a five-field cron against its range.
func cronField(f string, lo, hi int) error {
	for _, part := range strings.Split(f, ",") {
		rng, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return fmt.Errorf("step %q", step)
			}
		}
		if rng == "*" {
			continue
		}
		a, b, isRange := strings.Cut(rng, "-")
		if !isRange {
			b = a
		}
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || x < lo || y > hi || x > y {
			return fmt.Errorf("%q out of %d-%d", rng, lo, hi)
		}
	}
	return nil
}

func checkCron(c string) error {
	fields := strings.Fields(c)
	if len(fields) != 5 {
		return fmt.Errorf("%d fields", len(fields))
	}
	bounds := [][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}
	for i, f := range fields {
		if err := cronField(f, bounds[i][0], bounds[i][1]); err != nil {
			return fmt.Errorf("field %d: %w", i+1, err)
		}
	}
	return nil
}

func TestCheckCron(t *testing.T) {
	for c, ok := range map[string]bool{"* 9-15 * * 1-5": true, "*/5 0 1 1 0": true, "* * *": false, "60 * * * *": false, "* 15-9 * * *": false} {
		if err := checkCron(c); (err == nil) != ok {
			t.Errorf("checkCron(%q) = %v", c, err)
		}
	}
}

func TestPingSources(t *testing.T) {
	opts := DefaultOptions()
	ctx := eventingContext(opts.Namespace)
	for name, fs := range catalogs {
		t.Run(name, func(t *testing.T) {
			files := mustGenerate(t, fs())
			_, trigs, pings := eventing(t, files)
			var pingNames []string
			for _, p := range pings {
				pingNames = append(pingNames, p.Name)
				if err := checkCron(p.Spec.Schedule); err != nil {
					t.Errorf("PingSource %s: schedule %q: %v", p.Name, p.Spec.Schedule, err)
				}
				if _, err := time.LoadLocation(p.Spec.Timezone); err != nil {
					t.Errorf("PingSource %s: %v", p.Name, err)
				}
				if fe := p.Spec.SourceSpec.Validate(ctx); fe != nil {
					t.Errorf("PingSource %s: %v", p.Name, fe)
				}
				if s := p.Spec.Sink.Ref; s == nil || s.Kind != "Broker" || s.Name != opts.Broker {
					t.Errorf("PingSource %s: sink %+v is not the Broker", p.Name, s)
				}
			}
			// A schedule is generated exactly when someone subscribes to its type, and each
			// subscriber gets a Trigger on the PingSource's real type and source.
			var wantNames []string
			for _, s := range opts.Schedules {
				for _, f := range fs() {
					for _, e := range f.Events {
						if e.Type != s.Type {
							continue
						}
						if !slices.Contains(wantNames, s.Name) {
							wantNames = append(wantNames, s.Name)
						}
						found := slices.ContainsFunc(trigs, func(tr Trigger) bool {
							a := tr.Spec.Filter.Attributes
							return tr.Spec.Subscriber.Ref.Name == f.Name && a["type"] == PingEventType &&
								a["source"] == PingSourceSource(opts.Namespace, s.Name) && tr.Spec.Subscriber.URI.Path == cmpOrSlash(e.Path)
						})
						if !found {
							t.Errorf("%s subscribes to %s but gets no Trigger for PingSource %s", f.Name, s.Type, s.Name)
						}
					}
				}
			}
			sort.Strings(pingNames)
			sort.Strings(wantNames)
			if !slices.Equal(pingNames, wantNames) {
				t.Errorf("PingSources %v, want %v", pingNames, wantNames)
			}
		})
	}
}

func TestFixtureHasTheTick(t *testing.T) {
	// The fixture must exercise the PingSource path, or TestPingSources proves nothing.
	_, _, pings := eventing(t, mustGenerate(t, fixtureCatalog()))
	if len(pings) != 1 {
		t.Fatalf("fixture: %d PingSources, want 1", len(pings))
	}
}

// TestTriggerDeliveryIsTheCatalogs: a subscription's own Delivery reaches its Trigger (and
// only its Trigger); the local Broker reads the same Subscription.Policy.
func TestTriggerDeliveryIsTheCatalogs(t *testing.T) {
	fs := fixtureCatalog()
	var sub, fn string
	for i := range fs {
		if len(fs[i].Events) > 0 && fs[i].Name != DeadLetter {
			fs[i].Events[0].Delivery = functions.Delivery{Retry: 2, BackoffDelay: 1500 * time.Millisecond}
			sub, fn = fs[i].Events[0].Type, fs[i].Name
			break
		}
	}
	if sub == "" {
		t.Fatal("fixture has no subscription")
	}
	files := mustGenerate(t, fs)
	seen := 0
	for _, o := range objects(t, files, "base/eventing/")["Trigger"] {
		var tr Trigger
		strict(t, o, &tr)
		d := tr.Spec.Delivery
		own := tr.Spec.Subscriber.Ref.Name == fn && tr.Spec.Filter.Attributes["type"] == sub
		want := functions.DefaultDelivery
		if own {
			seen++
			want.Retry, want.BackoffDelay = 2, 1500*time.Millisecond
		}
		if *d.Retry != int32(want.Retry) || *d.BackoffDelay != isoDuration(want.BackoffDelay) || *d.BackoffPolicy != "exponential" {
			t.Errorf("Trigger %s: retry %d backoff %s, want %d %s", tr.Name, *d.Retry, *d.BackoffDelay, want.Retry, isoDuration(want.BackoffDelay))
		}
		if tr.Spec.Subscriber.Ref.Name != DeadLetter && (d.DeadLetterSink == nil || d.DeadLetterSink.Ref.Name != DeadLetter) {
			t.Errorf("Trigger %s: dead-letter sink %+v, want %s", tr.Name, d.DeadLetterSink, DeadLetter)
		}
	}
	if seen != 1 {
		t.Errorf("%d Triggers for %s of %s, want 1", seen, sub, fn)
	}
}

// TestLocalPingSourceMatches: the local platform's ticks carry the source the cluster's
// PingSources do, so receivers dedup and log them the same way in both.
func TestLocalPingSourceMatches(t *testing.T) {
	for _, s := range DefaultSchedules() {
		if got, want := local.PingSourceSource("day-trade", s.Name), PingSourceSource("day-trade", s.Name); got != want {
			t.Errorf("local source %q, PingSource %q", got, want)
		}
	}
}
