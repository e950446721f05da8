package manifests

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/day-trade/platform/functions"
)

// knative.dev/eventing does not resolve here, so these types mirror the fields we emit of
// its v1 CRDs (eventing.knative.dev/v1 Broker and Trigger, sources.knative.dev/v1
// PingSource). Destinations and sinks use knative.dev/pkg's duck types, which eventing
// itself uses and validates. Tests decode the YAML strictly back into these types.

// Broker is eventing.knative.dev/v1 Broker.
type Broker struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              BrokerSpec `json:"spec"`
}

// BrokerSpec holds the Broker's default delivery, used by Triggers that set none.
type BrokerSpec struct {
	Delivery *DeliverySpec `json:"delivery,omitempty"`
}

// DeliverySpec is eventing's duck v1 DeliverySpec.
type DeliverySpec struct {
	DeadLetterSink *duckv1.Destination `json:"deadLetterSink,omitempty"`
	Retry          *int32              `json:"retry,omitempty"`
	BackoffPolicy  *string             `json:"backoffPolicy,omitempty"` // linear | exponential
	BackoffDelay   *string             `json:"backoffDelay,omitempty"`  // ISO 8601 duration
}

// Trigger is eventing.knative.dev/v1 Trigger.
type Trigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TriggerSpec `json:"spec"`
}

// TriggerSpec subscribes Subscriber to the Broker's events that match Filter exactly.
type TriggerSpec struct {
	Broker     string             `json:"broker"`
	Filter     *TriggerFilter     `json:"filter,omitempty"`
	Subscriber duckv1.Destination `json:"subscriber"`
	Delivery   *DeliverySpec      `json:"delivery,omitempty"`
}

// TriggerFilter matches CloudEvent attributes exactly.
type TriggerFilter struct {
	Attributes map[string]string `json:"attributes,omitempty"`
}

// PingSource is sources.knative.dev/v1 PingSource.
type PingSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PingSourceSpec `json:"spec"`
}

// PingSourceSpec sends Data to the sink on the cron Schedule, read in Timezone.
type PingSourceSpec struct {
	duckv1.SourceSpec `json:",inline"`
	Schedule          string `json:"schedule"`
	Timezone          string `json:"timezone,omitempty"`
	ContentType       string `json:"contentType,omitempty"`
	Data              string `json:"data,omitempty"`
}

// PingEventType is the CloudEvent type every PingSource sends; it cannot be overridden.
const PingEventType = "dev.knative.sources.ping"

// PingSourceSource is the CloudEvent source of the PingSource name in namespace ns.
func PingSourceSource(ns, name string) string {
	return fmt.Sprintf("/apis/v1/namespaces/%s/pingsources/%s", ns, name)
}

// Schedule is a cron tick (functions.Schedule). It becomes a PingSource to the Broker when a
// catalog function subscribes to Type. A PingSource's events carry type
// dev.knative.sources.ping, never Type, so each subscriber of Type also gets a Trigger on
// that type and the PingSource's source: receivers must take it as a Type event.
type Schedule = functions.Schedule

// DefaultSchedules are the catalog's cron ticks.
func DefaultSchedules() []Schedule { return functions.Schedules() }

func (g *generator) ref(kind, apiVersion, name string) *duckv1.KReference {
	return &duckv1.KReference{APIVersion: apiVersion, Kind: kind, Name: name}
}

func (g *generator) serviceRef(name string) *duckv1.KReference {
	return g.ref("Service", servingv1.SchemeGroupVersion.String(), name)
}

// delivery is d as a Trigger's (or the Broker's) spec.delivery. Its deadLetterSink is left
// out when the catalog lacks the sink function: the events are dropped after their retries.
func (g *generator) delivery(d functions.Delivery) *DeliverySpec {
	out := &DeliverySpec{
		Retry:         ptr(int32(d.Retry)),
		BackoffPolicy: ptr("exponential"),
		BackoffDelay:  ptr(isoDuration(d.BackoffDelay)),
	}
	if _, ok := g.byName[d.DeadLetterSink]; ok {
		out.DeadLetterSink = &duckv1.Destination{Ref: g.serviceRef(d.DeadLetterSink)}
	}
	return out
}

func (g *generator) broker() (*Broker, []string) {
	b := &Broker{
		TypeMeta:   metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Broker"},
		ObjectMeta: g.meta(g.opts.Broker),
		Spec:       BrokerSpec{Delivery: g.delivery(functions.DefaultDelivery)},
	}
	b.Annotations = map[string]string{"eventing.knative.dev/broker.class": g.opts.BrokerClass}
	note := []string{"The Broker's delivery applies to Triggers without their own; every generated Trigger has one."}
	if _, ok := g.byName[functions.DefaultDelivery.DeadLetterSink]; !ok {
		note = append(note, "The catalog has no "+functions.DefaultDelivery.DeadLetterSink+" function yet: events are dropped after their retries.")
	}
	return b, note
}

func (g *generator) trigger(name string, f functions.Function, filter map[string]string, e functions.Subscription) *Trigger {
	path := e.Path
	if path == "" {
		path = "/"
	}
	uri, _ := apis.ParseURL(path) // a relative path always parses; checked in Generate
	t := &Trigger{
		TypeMeta:   metav1.TypeMeta{APIVersion: "eventing.knative.dev/v1", Kind: "Trigger"},
		ObjectMeta: g.meta(name),
		Spec: TriggerSpec{
			Broker:     g.opts.Broker,
			Filter:     &TriggerFilter{Attributes: filter},
			Subscriber: duckv1.Destination{Ref: g.serviceRef(f.Name), URI: uri},
			Delivery:   g.delivery(e.Policy(f.Name)),
		},
	}
	t.Labels = g.labels(f)
	return t
}

// triggers are one per catalog subscription, plus one per subscriber of a schedule.
func (g *generator) triggers() []any {
	var out []any
	used := map[string]bool{}
	for _, f := range g.fs {
		for _, e := range f.Events {
			filter := map[string]string{"type": e.Type}
			if e.Source != "" {
				filter["source"] = e.Source
			}
			name := uniqueName(used, f.Name+"-"+strings.ReplaceAll(strings.TrimPrefix(e.Type, "com.daytrade."), ".", "-"), e.Type+"|"+e.Source+"|"+e.Path)
			out = append(out, g.trigger(name, f, filter, e))
			for _, s := range g.opts.Schedules {
				if s.Type != e.Type || (e.Source != "" && e.Source != PingSourceSource(g.opts.Namespace, s.Name)) {
					continue
				}
				filter := map[string]string{"type": PingEventType, "source": PingSourceSource(g.opts.Namespace, s.Name)}
				name := uniqueName(used, f.Name+"-ping-"+s.Name, s.Name+"|"+e.Path)
				out = append(out, g.trigger(name, f, filter, e))
			}
		}
	}
	return out
}

// uniqueName keeps name readable, adding a hash of key when it is taken or too long.
func uniqueName(used map[string]bool, name, key string) string {
	if len(name) > 63 || used[name] {
		h := fnv.New32a()
		h.Write([]byte(name + "|" + key))
		suffix := "-" + strconv.FormatUint(uint64(h.Sum32()), 16)
		name = strings.TrimRight(name[:min(len(name), 63-len(suffix))], "-") + suffix
	}
	used[name] = true
	return name
}

var pingNote = []string{
	"A PingSource's events have type " + PingEventType + " and its own source; the Triggers",
	"named after each schedule deliver them to the subscribers of the schedule's catalog type.",
}

func (g *generator) pingSources() []any {
	var out []any
	for _, s := range g.opts.Schedules {
		subscribed := slices.ContainsFunc(g.fs, func(f functions.Function) bool {
			return slices.ContainsFunc(f.Events, func(e functions.Subscription) bool { return e.Type == s.Type })
		})
		if !subscribed {
			continue
		}
		p := &PingSource{
			TypeMeta:   metav1.TypeMeta{APIVersion: "sources.knative.dev/v1", Kind: "PingSource"},
			ObjectMeta: g.meta(s.Name),
			Spec: PingSourceSpec{
				SourceSpec:  duckv1.SourceSpec{Sink: duckv1.Destination{Ref: g.ref("Broker", "eventing.knative.dev/v1", g.opts.Broker)}},
				Schedule:    s.Cron,
				Timezone:    s.Timezone,
				ContentType: "application/json",
				Data:        s.Data,
			},
		}
		p.Labels = map[string]string{"app.kubernetes.io/part-of": partOf}
		out = append(out, p)
	}
	return out
}

// isoDuration writes d as the ISO 8601 duration eventing's backoffDelay takes, e.g. PT0.5S.
func isoDuration(d time.Duration) string {
	return "PT" + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}
