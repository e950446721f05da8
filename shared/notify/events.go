package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/day-trade/platform/events"
)

// Meta keys carried on a com.daytrade.notification.requested event published by
// notifications-send: the stored notification and which of its targets the event is for.
const (
	MetaNotificationID = "notification_id"
	MetaChannelIndex   = "channel_index"
	MetaType           = "type"
	MetaPriority       = "priority"
	MetaURL            = "url"
	MetaTo             = "to" // comma-separated recipients
)

// RequestedEvents returns one event payload per target of n: each channel is its own event so
// that the Broker retries and dead-letters channels independently.
func RequestedEvents(n Notification, tenant string) []events.NotificationRequested {
	out := make([]events.NotificationRequested, len(n.Targets))
	for i, t := range n.Targets {
		out[i] = events.NotificationRequested{
			Tenant: tenant, Channel: t.Channel, Severity: n.Priority.Severity(), Title: n.Title, Body: n.Message, Ref: n.Ref,
			Meta: map[string]string{MetaNotificationID: n.ID, MetaChannelIndex: strconv.Itoa(i), MetaType: n.Type, MetaPriority: string(n.Priority)},
		}
	}
	return out
}

// EventNotificationID derives a notification id from a CloudEvent's (source, id), so that a
// redelivered event maps to the same notification and is not sent twice.
func EventNotificationID(source, id string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + id))
	return "evt_" + hex.EncodeToString(sum[:12])
}

// FromRequested builds the notification for a requested event from another producer (one
// without a stored notification): a single target from the payload's channel and meta.
func FromRequested(id, source string, at time.Time, p events.NotificationRequested) (Notification, error) {
	pr := PriorityNormal
	switch p.Severity {
	case "warning":
		pr = PriorityHigh
	case "critical":
		pr = PriorityCritical
	}
	if v, err := ParsePriority(p.Meta[MetaPriority]); err == nil && p.Meta[MetaPriority] != "" {
		pr = v
	}
	typ := p.Meta[MetaType]
	if !ValidType(typ) {
		typ = "notification"
	}
	t := Target{Channel: p.Channel, URL: p.Meta[MetaURL]}
	if to := p.Meta[MetaTo]; to != "" {
		t.To = strings.Split(to, ",")
	}
	n := Notification{ID: id, Type: typ, Title: p.Title, Message: p.Body, Priority: pr, Targets: []Target{t},
		Ref: p.Ref, Source: source, Tenant: p.Tenant, CreatedAt: at}
	if err := n.validateEvent(); err != nil {
		return n, err
	}
	return n, nil
}

func (n Notification) validateEvent() error {
	switch {
	case len(n.Targets) != 1 || !contains(Channels, n.Targets[0].Channel):
		return fmt.Errorf("unknown channel")
	case strings.TrimSpace(n.Message) == "" && strings.TrimSpace(n.Title) == "":
		return fmt.Errorf("empty message")
	case len(n.Message) > MaxMessageLen || len(n.Title) > MaxTitleLen:
		return fmt.Errorf("message or title too long")
	}
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// FromBatchCompleted notifies the end of an ML batch; a failure is urgent.
func FromBatchCompleted(id, source string, at time.Time, p events.MLBatchCompleted, targets []Target) Notification {
	pr, title := PriorityNormal, "Batch prediction finished"
	msg := fmt.Sprintf("Job %s %s: %d symbols predicted, %d failed.", p.JobID, p.Outcome, p.Predicted, p.Failed)
	if p.Outcome == events.OutcomeFailed {
		pr, title = PriorityHigh, "Batch prediction failed"
		if p.Error != "" {
			msg += " Reason: " + p.Error
		}
	}
	return Notification{ID: id, Type: "ml.batch.completed", Title: title, Message: msg, Priority: pr,
		Targets: targets, Ref: p.JobID, Source: source, Tenant: p.Tenant, CreatedAt: at}
}

// FromAccuracyDegraded warns that a model's live accuracy crossed its threshold.
func FromAccuracyDegraded(id, source string, at time.Time, p events.MLAccuracyDegraded, targets []Target) Notification {
	msg := fmt.Sprintf("Model %s %s: %s %.4f crossed the threshold %.4f over %s.", p.Model, p.Version, p.Metric, p.Value, p.Threshold, p.Window)
	if len(p.Symbols) > 0 {
		msg += " Worst: " + strings.Join(p.Symbols[:min(len(p.Symbols), 10)], ", ") + "."
	}
	return Notification{ID: id, Type: "ml.accuracy.degraded", Title: "Model accuracy degraded", Message: msg,
		Priority: PriorityHigh, Targets: targets, Ref: p.Model + "@" + p.Version, Source: source, CreatedAt: at}
}

// FromOrderFilled reports a (paper) fill.
func FromOrderFilled(id, source string, at time.Time, p events.OrderFilled, targets []Target) Notification {
	kind := "filled"
	if p.Partial {
		kind = "partially filled"
	}
	msg := fmt.Sprintf("Order %s %s: %s %s %s @ %s %s (fee %s).", p.OrderID, kind, strings.ToUpper(p.Side), p.Quantity, p.Symbol, p.Price, p.Currency, p.Fee)
	return Notification{ID: id, Type: "execution.order.filled", Title: "Order " + kind + ": " + p.Symbol, Message: msg,
		Priority: PriorityNormal, Targets: targets, Ref: p.OrderID, Source: source, Tenant: p.Tenant, CreatedAt: at}
}
