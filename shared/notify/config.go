package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config is the channels' configuration, loaded by main with envconfig. URLs that carry
// tokens (the Slack webhook) and the signing secret come from Secrets.
type Config struct {
	WebhookURL    string `envconfig:"NOTIFY_WEBHOOK_URL"`
	WebhookSecret string `envconfig:"NOTIFY_WEBHOOK_SECRET"`
	SlackURL      string `envconfig:"NOTIFY_SLACK_WEBHOOK_URL"`
	SMTPAddr      string `envconfig:"SMTP_ADDR"` // host:port
	SMTPFrom      string `envconfig:"SMTP_FROM"`
	SMTPUsername  string `envconfig:"SMTP_USERNAME"`
	SMTPPassword  string `envconfig:"SMTP_PASSWORD"`
	EmailTo       string `envconfig:"NOTIFY_EMAIL_TO"` // comma-separated default recipients
	// AllowCIDRs opens otherwise refused ranges to webhook targets: local development only.
	AllowCIDRs string `envconfig:"NOTIFY_ALLOW_CIDRS"`
	// DefaultChannels receive notifications made from platform events (batch done, accuracy
	// degraded, order filled).
	DefaultChannels string        `envconfig:"NOTIFY_DEFAULT_CHANNELS" default:"log"`
	Timeout         time.Duration `envconfig:"NOTIFY_TIMEOUT" default:"10s"`
	// Resolver resolves webhook hosts when a target is checked; nil is the system resolver.
	Resolver *net.Resolver `ignored:"true"`
}

// Validate checks the settings that can be checked without the network.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParseAllow(c.AllowCIDRs); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Defaults(); err != nil {
		errs = append(errs, err)
	}
	if c.EmailTo != "" {
		if _, err := ParseRecipients(splitList(c.EmailTo)); err != nil {
			errs = append(errs, fmt.Errorf("NOTIFY_EMAIL_TO: %w", err))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("NOTIFY_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Defaults returns the targets for event-made notifications.
func (c Config) Defaults() ([]Target, error) {
	var out []Target
	for _, ch := range splitList(c.DefaultChannels) {
		if !contains(Channels, ch) {
			return nil, fmt.Errorf("NOTIFY_DEFAULT_CHANNELS: unknown channel %q", ch)
		}
		out = append(out, Target{Channel: ch})
	}
	return out, nil
}

// Configured reports whether channel ch has a default destination (log always has).
func (c Config) Configured(ch string) bool {
	switch ch {
	case ChannelWebhook:
		return c.WebhookURL != "" && c.WebhookSecret != ""
	case ChannelSlack:
		return c.SlackURL != ""
	case ChannelEmail:
		return c.SMTPAddr != "" && c.SMTPFrom != "" && c.EmailTo != ""
	}
	return ch == ChannelLog
}

// Guard is the SSRF guard the configuration asks for.
func (c Config) Guard() Guard {
	allow, _ := ParseAllow(c.AllowCIDRs)
	return Guard{Allow: allow, Resolver: c.Resolver}
}

// Senders builds every channel's sender. The configured default URLs are checked by the guard
// too: a misconfigured internal default is refused at send time like any other.
func (c Config) Senders(log *slog.Logger) map[string]Sender {
	hc := c.Guard().Client(c.Timeout)
	return map[string]Sender{
		ChannelWebhook: &Webhook{Client: hc, Secret: []byte(c.WebhookSecret), DefaultURL: c.WebhookURL},
		ChannelSlack:   &Slack{Client: hc, DefaultURL: c.SlackURL},
		ChannelEmail: &Email{Addr: c.SMTPAddr, From: c.SMTPFrom, DefaultTo: splitList(c.EmailTo),
			Username: c.SMTPUsername, Password: c.SMTPPassword, Timeout: c.Timeout},
		ChannelLog: Log{Logger: log},
	}
}

// CheckTarget validates a caller-given target, naming what is wrong: the channel, a URL the
// guard refuses (resolved now; the dialer checks again at send time), recipients, or a
// missing destination with no configured default.
func (c Config) CheckTarget(ctx context.Context, t Target) (field, reason string) {
	if !contains(Channels, t.Channel) {
		return "type", fmt.Sprintf("unknown channel %q (valid: %s)", t.Channel, strings.Join(Channels, ", "))
	}
	switch {
	case t.URL != "" && t.Channel != ChannelWebhook && t.Channel != ChannelSlack:
		return "url", "only webhook and slack channels take a url"
	case len(t.To) > 0 && t.Channel != ChannelEmail:
		return "to", "only the email channel takes recipients"
	case t.URL != "":
		if err := c.Guard().CheckURL(ctx, t.URL); err != nil {
			return "url", err.Error()
		}
		if t.Channel == ChannelWebhook && c.WebhookSecret == "" {
			return "url", "webhooks are not enabled: no signing secret is configured"
		}
		return "", ""
	case len(t.To) > 0:
		if _, err := ParseRecipients(t.To); err != nil {
			return "to", err.Error()
		}
		if c.SMTPAddr == "" || c.SMTPFrom == "" {
			return "to", "email is not configured on this platform"
		}
		return "", ""
	}
	if !c.Configured(t.Channel) {
		switch t.Channel {
		case ChannelEmail:
			return "to", "no default recipients are configured; give to"
		default:
			return "url", "no default " + t.Channel + " URL is configured; give url"
		}
	}
	return "", ""
}
