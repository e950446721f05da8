// Command gateway is the API gateway: the one public entry under /api/v1.
package main

import (
	"context"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/runtime"
)

type cfg struct {
	config.Runtime
	// UpstreamDialAddr sends every upstream connection to one address (the local platform's
	// activator); empty in a cluster, where Knative hosts resolve through DNS.
	UpstreamDialAddr string        `envconfig:"UPSTREAM_DIAL_ADDR"`
	UpstreamTimeout  time.Duration `envconfig:"UPSTREAM_TIMEOUT" default:"30s"`
}

func (c cfg) Validate() error { return c.Runtime.Validate() }

func main() { runtime.Main[cfg]("gateway", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	tr := otelhttp.NewTransport(gateway.NewTransport(c.UpstreamDialAddr),
		otelhttp.WithTracerProvider(d.Telemetry.TracerProvider),
		otelhttp.WithMeterProvider(d.Telemetry.MeterProvider),
		otelhttp.WithPropagators(d.Telemetry.Propagator))
	h := gateway.New(gateway.Config{
		Namespace:       c.Namespace,
		UpstreamTimeout: c.UpstreamTimeout,
	}, d.Log, gateway.RoutesFromCatalog(functions.Catalog()), tr)
	return runtime.Function{Handler: h}, nil
}
