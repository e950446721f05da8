// Command canary rolls a Knative Service's newest revision out step by step and rolls it
// back when Prometheus shows it failing (see package knative/canary):
//
//	go run ./knative/cmd/canary -pin data-stocks          # once: tag what serves as current
//	ko apply ...                                           # deploy: a new revision at 0%
//	go run ./knative/cmd/canary -prometheus http://prometheus.monitoring:9090 data-stocks
//
// It exits 0 when the candidate was promoted, 2 when it was rolled back, 1 on an error
// (nothing changed, or the rollback itself failed). It talks to the cluster of the current
// kubeconfig context ($KUBECONFIG, ~/.kube/config) or, inside a pod, the in-cluster config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/serving/pkg/client/clientset/versioned"

	"github.com/day-trade/platform/knative/canary"
)

const (
	exitRolledBack = 2
	exitError      = 1
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, newClient)
	if err != nil {
		fmt.Fprintln(os.Stderr, "canary:", err)
	}
	os.Exit(code)
}

// newClient builds the serving clientset from kubeconfig (or in-cluster) settings.
func newClient(kubeconfig, kubecontext string) (versioned.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubecontext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes config: %w", err)
	}
	cfg.UserAgent = "day-trade-canary"
	return versioned.NewForConfig(cfg)
}

func run(ctx context.Context, args []string, stdout io.Writer, client func(kubeconfig, kubecontext string) (versioned.Interface, error)) (int, error) {
	fl := flag.NewFlagSet("canary", flag.ContinueOnError)
	fl.SetOutput(stdout)
	fl.Usage = func() {
		fmt.Fprintln(stdout, "usage: canary [flags] <service>\n       canary -pin [-revision REV] <service>")
		fl.PrintDefaults()
	}
	var (
		kubeconfig  = fl.String("kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config; in a pod, the in-cluster config)")
		kubecontext = fl.String("context", "", "kubeconfig context (default the current one)")
		namespace   = fl.String("namespace", "day-trade", "namespace of the Service")
		pin         = fl.Bool("pin", false, "tag -revision (default the latest ready one) as current with 100% of traffic, then exit")
		revision    = fl.String("revision", "", "with -pin: the revision to pin")
		candidate   = fl.String("candidate", "", "revision to roll out (default the Service's latest ready revision)")
		promURL     = fl.String("prometheus", "http://prometheus.monitoring.svc.cluster.local:9090", "Prometheus base URL (its /api/v1/query is used)")
		promToken   = fl.String("prometheus-token-file", "", "file holding a bearer token for Prometheus")
		steps       = fl.String("steps", "5,25,50,100", "candidate traffic shares, in percent")
		interval    = fl.Duration("interval", 2*time.Minute, "how long each step is watched before it is judged (also the PromQL range)")
		maxErr      = fl.Float64("max-error-rate", 0.01, "highest share (0..1) of candidate requests answered 5xx")
		maxP95      = fl.Duration("max-p95", time.Second, "highest candidate p95 latency")
		errQuery    = fl.String("error-rate-query", canary.DefaultErrorRateQuery, "PromQL template giving the candidate's 5xx share ({{.Namespace}} {{.Service}} {{.Revision}} {{.Window}})")
		p95Query    = fl.String("p95-query", canary.DefaultP95Query, "PromQL template giving the candidate's p95 in seconds")
		noTraffic   = fl.Bool("allow-no-traffic", false, "judge a step with no candidate requests as clean (default: roll back)")
		settle      = fl.Duration("settle-timeout", 2*time.Minute, "how long to wait for the Route to serve a new split")
	)
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return exitError, err
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return exitError, errors.New("name exactly one service")
	}
	service := fl.Arg(0)
	cs, err := client(*kubeconfig, *kubecontext)
	if err != nil {
		return exitError, err
	}
	if *pin {
		if _, err := canary.Pin(ctx, cs, *namespace, service, *revision, stdout); err != nil {
			return exitError, err
		}
		return 0, nil
	}
	stepList, err := parseSteps(*steps)
	if err != nil {
		return exitError, err
	}
	prom := canary.Prometheus{URL: *promURL}
	if *promToken != "" {
		tok, err := os.ReadFile(*promToken)
		if err != nil {
			return exitError, err
		}
		prom.Header = map[string][]string{"Authorization": {"Bearer " + strings.TrimSpace(string(tok))}}
	}
	res, err := canary.Run(ctx, cs, prom, canary.Options{
		Namespace: *namespace, Service: service, Candidate: *candidate, Steps: stepList,
		Interval: *interval, MaxErrorRate: *maxErr, MaxP95: *maxP95,
		ErrorRateQuery: *errQuery, P95Query: *p95Query, AllowNoTraffic: *noTraffic,
		SettleTimeout: *settle, Out: stdout,
	})
	if err != nil {
		return exitError, err
	}
	if res.Outcome == canary.RolledBack {
		return exitRolledBack, nil
	}
	return 0, nil
}

func parseSteps(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("-steps %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}
