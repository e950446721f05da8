package functions

import "time"

// Event types spelled out so that the catalog does not link the CloudEvents SDK.
const (
	typeNotificationRequested = "com.daytrade.notification.requested"
	typeMLBatchCompleted      = "com.daytrade.ml.batch.completed"
	typeMLAccuracyDegraded    = "com.daytrade.ml.accuracy.degraded"
	typeExecutionOrderFilled  = "com.daytrade.execution.order.filled"
)

// notifySecrets are the channel credentials: the signing secret, the Slack webhook URL (its
// path is a token) and the SMTP password.
var notifySecrets = []string{"NOTIFY_WEBHOOK_SECRET", "NOTIFY_SLACK_WEBHOOK_URL", "SMTP_PASSWORD"}

func notificationFunctions() []Function {
	return []Function{
		{
			Name:        "notifications-send",
			Kind:        KindFunction,
			Description: "Validate and store a notification, then publish one notification.requested event per channel",
			// Not idempotent: a retried POST would send the notification twice.
			Routes:    []Route{{Method: "POST", Path: "/api/v1/notifications/send", Roles: []string{RoleTrader, RoleAdmin}}},
			Scaling:   defaultScaling,
			Timeout:   30 * time.Second,
			Env:       map[string]string{"NOTIFY_DEFAULT_CHANNELS": "log"},
			Secrets:   notifySecrets,
			KeyPrefix: "notif",
			RedisKeys: redisNotify,
			Publishes: []string{typeNotificationRequested},
		},
		{
			Name:        "notifications-dispatcher",
			Kind:        KindFunction,
			Description: "Deliver notifications over webhook, Slack, email and log with per-channel retries and status",
			Events: []Subscription{
				{Type: typeNotificationRequested},
				{Type: typeMLBatchCompleted},
				{Type: typeMLAccuracyDegraded},
				{Type: typeExecutionOrderFilled},
			},
			Scaling: Scaling{MinScale: 0, MaxScale: 5, Concurrency: 50, Target: 40, IdleWindow: 60 * time.Second},
			// A channel's whole retry run (6 attempts of up to 10s with backoff) fits well inside.
			Timeout:   5 * time.Minute,
			Env:       map[string]string{"NOTIFY_DEFAULT_CHANNELS": "log"},
			Secrets:   notifySecrets,
			KeyPrefix: "notif",
			RedisKeys: redisKeys(redisNotify, []string{redisDedup("notif")}),
		},
		{
			Name:        "notifications-status",
			Kind:        KindFunction,
			Description: "A notification and the delivery status of each of its channels",
			Routes:      []Route{{Method: "GET", Path: "/api/v1/notifications/{id}", Roles: []string{RoleTrader, RoleAdmin}, Idempotent: true}},
			Scaling:     defaultScaling,
			Timeout:     10 * time.Second,
			KeyPrefix:   "notif",
			RedisKeys:   []string{"notif:n:*"},
		},
	}
}
