// Package config loads a binary's typed configuration from the environment once, in main,
// and validates it before anything serves. Nothing below main reads the environment.
package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Validator is implemented by config structs that check their own values.
type Validator interface {
	Validate() error
}

// Load fills spec from the environment (envconfig tags) and validates it, including any
// embedded or nested struct that implements Validator.
func Load(spec any) error {
	if err := envconfig.Process("", spec); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if v, ok := spec.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}

// Runtime is the Knative runtime contract plus the process limits every function shares.
type Runtime struct {
	Port            int           `envconfig:"PORT" default:"8080"`
	BindAddr        string        `envconfig:"BIND_ADDR"` // "" = all interfaces (Knative); the local platform sets 127.0.0.1
	Service         string        `envconfig:"K_SERVICE"`
	Revision        string        `envconfig:"K_REVISION"`
	Configuration   string        `envconfig:"K_CONFIGURATION"`
	Namespace       string        `envconfig:"POD_NAMESPACE" default:"day-trade"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s"`
	MaxBodyBytes    int64         `envconfig:"MAX_BODY_BYTES" default:"1048576"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	OTLPEndpoint    string        `envconfig:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// LambdaRuntimeAPI is set by AWS Lambda; when present the binary serves Lambda events.
	LambdaRuntimeAPI string `envconfig:"AWS_LAMBDA_RUNTIME_API"`
	// InternalTokenPublicKey verifies the identity tokens the gateway mints (Ed25519, base64);
	// when set, every request's principal comes from that token and nothing else.
	InternalTokenPublicKey string `envconfig:"INTERNAL_TOKEN_PUBLIC_KEY"`
	// LambdaEventPaths maps a CloudEvent type to the path its EventBridge events are posted to
	// (default "/"); the SAM template sets it for subscriptions with another path.
	LambdaEventPaths map[string]string `envconfig:"LAMBDA_EVENT_PATHS"`
	// LambdaFunctionName is set by AWS Lambda and stands in for K_SERVICE there.
	LambdaFunctionName string `envconfig:"AWS_LAMBDA_FUNCTION_NAME"`
}

// Validate checks the runtime settings.
func (r Runtime) Validate() error {
	var errs []error
	if r.Port <= 0 || r.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT %d out of range", r.Port))
	}
	if r.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("SHUTDOWN_TIMEOUT must be positive"))
	}
	if r.MaxBodyBytes <= 0 {
		errs = append(errs, errors.New("MAX_BODY_BYTES must be positive"))
	}
	switch strings.ToLower(r.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL %q is not debug|info|warn|error", r.LogLevel))
	}
	return errors.Join(errs...)
}

// ServiceName returns the name the platform gave this process, or fallback.
func (r Runtime) ServiceName(fallback string) string {
	switch {
	case r.Service != "":
		return r.Service
	case r.LambdaFunctionName != "":
		return r.LambdaFunctionName
	}
	return fallback
}

// Redis locates the shared Redis.
type Redis struct {
	URL string `envconfig:"REDIS_URL" default:"redis://127.0.0.1:6379/0"`
}

// Validate checks the Redis settings.
func (r Redis) Validate() error {
	if !strings.HasPrefix(r.URL, "redis://") && !strings.HasPrefix(r.URL, "rediss://") && !strings.HasPrefix(r.URL, "unix://") {
		return fmt.Errorf("REDIS_URL %q must start with redis://, rediss:// or unix://", r.URL)
	}
	return nil
}

// RuntimeSettings lets shared/runtime find the runtime settings in any config that embeds Runtime.
func (r *Runtime) RuntimeSettings() Runtime { return *r }

// ValidateAll validates each part of a composite config and joins their errors; a config
// struct that embeds several parts calls it from its own Validate.
func ValidateAll(parts ...Validator) error {
	var errs []error
	for _, p := range parts {
		errs = append(errs, p.Validate())
	}
	return errors.Join(errs...)
}

// Market chooses and configures the market-data provider.
type Market struct {
	Provider        string        `envconfig:"DATA_PROVIDER" default:"synthetic"`
	CSVDir          string        `envconfig:"DATA_CSV_DIR"`
	JQuantsAPIKey   string        `envconfig:"JQUANTS_API_KEY"`
	JQuantsBaseURL  string        `envconfig:"JQUANTS_BASE_URL"`
	YahooBaseURL    string        `envconfig:"YAHOO_BASE_URL"`
	ProviderTimeout time.Duration `envconfig:"DATA_PROVIDER_TIMEOUT" default:"10s"`
}

// Validate checks the provider choice and that it has what it needs.
func (m Market) Validate() error {
	switch m.Provider {
	case "synthetic", "yahoo":
	case "csv":
		if m.CSVDir == "" {
			return errors.New("DATA_PROVIDER=csv needs DATA_CSV_DIR")
		}
	case "jquants":
		if m.JQuantsAPIKey == "" {
			return errors.New("DATA_PROVIDER=jquants needs JQUANTS_API_KEY")
		}
	default:
		return fmt.Errorf("DATA_PROVIDER %q is not synthetic|yahoo|jquants|csv", m.Provider)
	}
	if m.ProviderTimeout <= 0 {
		return errors.New("DATA_PROVIDER_TIMEOUT must be positive")
	}
	return nil
}
