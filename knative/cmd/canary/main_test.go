package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"knative.dev/serving/pkg/apis/serving"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"knative.dev/serving/pkg/client/clientset/versioned"
	"knative.dev/serving/pkg/client/clientset/versioned/fake"
)

// fakeCluster holds data-stocks following its latest revision (as `ko apply` leaves it)
// with a second revision ready; its reactor plays Knative's controllers.
func fakeCluster() *fake.Clientset {
	ready := duckv1.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionTrue}}
	var objs []runtime.Object
	for _, rev := range []string{"data-stocks-00001", "data-stocks-00002"} {
		r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: rev, Namespace: "day-trade", Labels: map[string]string{serving.ServiceLabelKey: "data-stocks"}}}
		r.Status.Conditions = ready
		objs = append(objs, r)
	}
	latest, all := true, int64(100)
	svc := &servingv1.Service{ObjectMeta: metav1.ObjectMeta{Name: "data-stocks", Namespace: "day-trade"}}
	svc.Spec.Traffic = []servingv1.TrafficTarget{{LatestRevision: &latest, Percent: &all}}
	svc.Status.Conditions = ready
	svc.Status.LatestReadyRevisionName = "data-stocks-00001"
	cs := fake.NewSimpleClientset(append(objs, svc)...)
	cs.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.UpdateAction).GetObject().(*servingv1.Service)
		s.Status.Traffic = s.Spec.Traffic
		return false, nil, nil
	})
	return cs
}

// deploy plays `ko apply` of new code: a new latest ready revision.
func deploy(t *testing.T, cs versioned.Interface, rev string) {
	t.Helper()
	svcs := cs.ServingV1().Services("day-trade")
	svc, err := svcs.Get(context.Background(), "data-stocks", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LatestReadyRevisionName = rev
	if _, err := svcs.UpdateStatus(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func prometheus(t *testing.T, errorRate string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := "0.05" // p95: 50ms
		if strings.Contains(r.FormValue("query"), "revision_request_count") {
			v = errorRate
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,%q]}]}}`, v)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPinThenCanary(t *testing.T) {
	tests := map[string]struct {
		errorRate string
		wantCode  int
		wantOut   string
		wantTraf  string
	}{
		"clean":  {errorRate: "0", wantCode: 0, wantOut: "promoted data-stocks-00002", wantTraf: "current=data-stocks-00002:100"},
		"breach": {errorRate: "0.2", wantCode: exitRolledBack, wantOut: "error rate 20.00% > max 1.00%", wantTraf: "current=data-stocks-00001:100 candidate=data-stocks-00002:0"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cs := fakeCluster()
			client := func(string, string) (versioned.Interface, error) { return cs, nil }
			var out bytes.Buffer
			if code, err := run(context.Background(), []string{"-pin", "data-stocks"}, &out, client); code != 0 || err != nil {
				t.Fatalf("pin: %d %v\n%s", code, err, out.String())
			}
			deploy(t, cs, "data-stocks-00002")
			code, err := run(context.Background(), []string{"-prometheus", prometheus(t, tc.errorRate), "-interval", "1ms", "data-stocks"}, &out, client)
			if err != nil || code != tc.wantCode {
				t.Fatalf("canary: exit %d, %v; want %d\n%s", code, err, tc.wantCode, out.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output lacks %q:\n%s", tc.wantOut, out.String())
			}
			svc, err := cs.ServingV1().Services("day-trade").Get(context.Background(), "data-stocks", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tt := range svc.Spec.Traffic {
				got = append(got, fmt.Sprintf("%s=%s:%d", tt.Tag, tt.RevisionName, *tt.Percent))
			}
			if strings.Join(got, " ") != tc.wantTraf {
				t.Errorf("traffic %v, want %s", got, tc.wantTraf)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	client := func(string, string) (versioned.Interface, error) { return fakeCluster(), nil }
	for name, args := range map[string][]string{
		"no service":  {},
		"bad steps":   {"-steps", "5,x", "data-stocks"},
		"not pinned":  {"-interval", "1ms", "data-stocks"},
		"bad flag":    {"-nope"},
		"two service": {"a", "b"},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := run(context.Background(), args, &out, client)
			if code != exitError || err == nil {
				t.Fatalf("exit %d, %v; want %d and an error", code, err, exitError)
			}
		})
	}
}
