package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sender delivers a notification to one target. Its errors are transient unless marked
// Permanent.
type Sender interface {
	Send(ctx context.Context, n Notification, t Target) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, n Notification, t Target) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, n Notification, t Target) error { return f(ctx, n, t) }

// Webhook headers. The signature follows Stripe's scheme: "t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>">", so a receiver can reject replays older than its tolerance.
const (
	HeaderSignature = "X-Daytrade-Signature"
	HeaderTimestamp = "X-Daytrade-Timestamp"
	HeaderID        = "X-Daytrade-Notification-Id"
)

// WebhookPayload is the JSON body of a generic webhook.
type WebhookPayload struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Title     string            `json:"title,omitempty"`
	Message   string            `json:"message"`
	Priority  Priority          `json:"priority"`
	Ref       string            `json:"ref,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
}

// Webhook posts a signed JSON payload.
type Webhook struct {
	Client     *http.Client // a Guard's client
	Secret     []byte       // HMAC key; required
	DefaultURL string       // used when the target names none
	Now        func() time.Time
}

// Sign returns the signature header value for body at time ts.
func Sign(secret, body []byte, ts time.Time) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is returned by Verify for any signature that does not check out.
var ErrBadSignature = errors.New("notify: bad webhook signature")

// Verify checks a signature header against body, as a receiver does: a v1 entry must match
// and the timestamp must be within tolerance of now.
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var (
		ts   int64 = -1
		sigs []string
	)
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return ErrBadSignature
			}
			ts = n
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts < 0 || len(sigs) == 0 {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp outside tolerance", ErrBadSignature)
	}
	want := Sign(secret, body, time.Unix(ts, 0))
	_, wantSig, _ := strings.Cut(want, ",v1=")
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(wantSig)) {
			return nil
		}
	}
	return ErrBadSignature
}

// Send posts the payload once; retries belong to the Dispatcher.
func (w *Webhook) Send(ctx context.Context, n Notification, t Target) error {
	target := t.URL
	if target == "" {
		target = w.DefaultURL
	}
	if target == "" {
		return permanent("no webhook URL: none given and none configured")
	}
	if len(w.Secret) == 0 {
		return permanent("no webhook signing secret configured")
	}
	body, err := json.Marshal(WebhookPayload{ID: n.ID, Type: n.Type, Title: n.Title, Message: n.Message,
		Priority: n.Priority, Ref: n.Ref, Meta: n.Meta, CreatedAt: n.CreatedAt})
	if err != nil {
		return permanent("encoding payload: %v", err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := now()
	return post(ctx, w.Client, target, body, http.Header{
		HeaderSignature: {Sign(w.Secret, body, ts)},
		HeaderTimestamp: {strconv.FormatInt(ts.Unix(), 10)},
		HeaderID:        {n.ID},
	})
}

// Slack posts a Slack-compatible incoming-webhook payload (text plus a section block); Slack,
// Mattermost and Rocket.Chat accept it.
type Slack struct {
	Client     *http.Client // a Guard's client
	DefaultURL string       // the incoming-webhook URL; a secret, since it carries the token
}

// Send posts the message once.
func (s *Slack) Send(ctx context.Context, n Notification, t Target) error {
	target := t.URL
	if target == "" {
		target = s.DefaultURL
	}
	if target == "" {
		return permanent("no Slack webhook URL: none given and none configured")
	}
	text := n.Message
	if n.Title != "" {
		text = "*" + n.Title + "*\n" + n.Message
	}
	icon := map[Priority]string{PriorityHigh: ":warning: ", PriorityCritical: ":rotating_light: "}[n.Priority]
	body, _ := json.Marshal(map[string]any{
		"text": icon + text,
		"blocks": []any{
			map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": icon + text}},
			map[string]any{"type": "context", "elements": []any{map[string]string{"type": "mrkdwn",
				"text": fmt.Sprintf("%s · %s · id %s", n.Type, n.Priority, n.ID)}}},
		},
	})
	return post(ctx, s.Client, target, body, nil)
}

func post(ctx context.Context, hc *http.Client, target string, body []byte, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return permanent("bad URL: %v", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "day-trade-notify/1.0")
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrBlockedAddress) {
			return &Permanent{Err: err}
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout, c == http.StatusTooEarly, c == http.StatusTooManyRequests, c >= 500:
		return fmt.Errorf("receiver answered %d", c)
	default:
		return permanent("receiver answered %d", c)
	}
}

// Log writes the notification to the structured log; it never fails.
type Log struct{ Logger *slog.Logger }

// Send logs n.
func (l Log) Send(ctx context.Context, n Notification, _ Target) error {
	l.Logger.InfoContext(ctx, "notification", "id", n.ID, "type", n.Type, "priority", n.Priority,
		"title", n.Title, "message", n.Message, "ref", n.Ref)
	return nil
}
