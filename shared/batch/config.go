package batch

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// EventConfig is the CloudEvents wiring of a function, loaded by main with envconfig.
type EventConfig struct {
	// Sink is set by a Knative SinkBinding; it wins over BrokerURL.
	Sink      string `envconfig:"K_SINK"`
	BrokerURL string `envconfig:"BROKER_URL"`
	// Lease bounds one delivery's work (events.ReceiverOptions.Lease): a crashed worker's
	// event is taken up again after it, and a live one is interrupted (and resumes) at it.
	Lease time.Duration `envconfig:"EVENT_LEASE" default:"2m"`
	// DedupTTL must exceed the Broker's redelivery window.
	DedupTTL time.Duration `envconfig:"EVENT_DEDUP_TTL" default:"24h"`
}

// Target is where events are published: K_SINK, else BROKER_URL.
func (c EventConfig) Target() string {
	if c.Sink != "" {
		return c.Sink
	}
	return c.BrokerURL
}

// Validate checks the durations and, for a publisher, that a target is set.
func (c EventConfig) Validate() error {
	var errs []error
	if c.Lease <= 0 || c.DedupTTL <= c.Lease {
		errs = append(errs, errors.New("EVENT_LEASE must be positive and below EVENT_DEDUP_TTL"))
	}
	if t := c.Target(); t != "" {
		if u, err := url.Parse(t); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("event sink %q (K_SINK or BROKER_URL) is not an http(s) URL", t))
		}
	}
	return errors.Join(errs...)
}

// PublisherConfig is the EventConfig of a function that publishes: a sink is required.
type PublisherConfig struct {
	EventConfig
}

// Validate checks EventConfig and that K_SINK or BROKER_URL is set.
func (c PublisherConfig) Validate() error {
	if c.Target() == "" {
		return errors.Join(c.EventConfig.Validate(), errors.New("K_SINK or BROKER_URL is required to publish events"))
	}
	return c.EventConfig.Validate()
}
