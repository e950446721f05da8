// Package notify delivers notifications over channels (a signed generic webhook, Slack-style
// incoming webhooks, email over SMTP, and the log), retrying each channel with backoff on its
// own, deduplicating by notification id, and recording every channel's delivery status in
// Redis under the notif: key space.
//
// Webhook targets are guarded against server-side request forgery at connect time: the
// dialer checks the IP it is about to connect to (after DNS), so a name that resolves to
// loopback, a private or link-local address or the cloud metadata endpoint is refused even
// though the URL looked harmless. Only an explicit allow-list (for local development) opens
// such ranges.
package notify

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Channel names.
const (
	ChannelWebhook = "webhook"
	ChannelSlack   = "slack"
	ChannelEmail   = "email"
	ChannelLog     = "log"
)

// Channels lists every channel.
var Channels = []string{ChannelWebhook, ChannelSlack, ChannelEmail, ChannelLog}

// Priority orders notifications; it also sets how hard delivery tries (Policy.Attempts).
type Priority string

const (
	PriorityLow      Priority = "low"
	PriorityNormal   Priority = "normal"
	PriorityHigh     Priority = "high"
	PriorityCritical Priority = "critical"
)

// Priorities lists every priority, lowest first.
var Priorities = []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical}

// ParsePriority accepts a priority name; "" is normal.
func ParsePriority(s string) (Priority, error) {
	if s == "" {
		return PriorityNormal, nil
	}
	p := Priority(strings.ToLower(s))
	if !slices.Contains(Priorities, p) {
		return "", fmt.Errorf("unknown priority %q (valid: low, normal, high, critical)", s)
	}
	return p, nil
}

// Severity maps a priority to the events package's severity vocabulary.
func (p Priority) Severity() string {
	switch p {
	case PriorityHigh:
		return "warning"
	case PriorityCritical:
		return "critical"
	}
	return "info"
}

// Target is one channel a notification goes to. URL (webhook, slack) and To (email) are
// optional: without them the channel's configured default destination is used.
type Target struct {
	Channel string   `json:"type"`
	URL     string   `json:"url,omitempty"`
	To      []string `json:"to,omitempty"`
}

// Notification is one message to deliver.
type Notification struct {
	ID       string            `json:"id"`
	Type     string            `json:"type"` // what it is about, e.g. "alert", "ml.batch.completed"
	Title    string            `json:"title,omitempty"`
	Message  string            `json:"message"`
	Priority Priority          `json:"priority"`
	Targets  []Target          `json:"targets"`
	Ref      string            `json:"ref,omitempty"`
	Meta     map[string]string `json:"meta,omitempty"`
	Source   string            `json:"source,omitempty"` // who asked: "api" or an event source
	// Tenant owns the notification: only its callers may read it back. Empty for a
	// platform-wide one (a model's accuracy alert), which only admins may read.
	Tenant    string    `json:"tenant,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// VisibleTo reports whether a caller of tenant (an admin when admin) may read n. A
// notification of another tenant is indistinguishable from a missing one.
func (n Notification) VisibleTo(tenant string, admin bool) bool {
	if n.Tenant == "" {
		return admin
	}
	return n.Tenant == tenant
}

// Limits on a notification's fields.
const (
	MaxMessageLen = 8000
	MaxTitleLen   = 200
	MaxTargets    = 8
	MaxRecipients = 20
	MaxMeta       = 20
)

var (
	idRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	typeRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
)

// ValidID reports whether s can be a notification id.
func ValidID(s string) bool { return idRE.MatchString(s) }

// ValidType reports whether s can be a notification type.
func ValidType(s string) bool { return typeRE.MatchString(s) }

// Permanent marks an error that retrying cannot fix (a 4xx from the receiver, a refused
// address, a bad recipient). Anything else is treated as transient.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// IsPermanent reports whether err is marked Permanent.
func IsPermanent(err error) bool {
	var p *Permanent
	return errors.As(err, &p)
}

func permanent(format string, args ...any) error { return &Permanent{Err: fmt.Errorf(format, args...)} }
