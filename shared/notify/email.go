package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// Email sends plain-text mail over SMTP (RFC 5321): STARTTLS when the server offers it,
// AUTH when a username is configured (net/smtp refuses PLAIN over an unencrypted connection
// to anything but localhost).
type Email struct {
	Addr      string // host:port of the submission server
	From      string // envelope and header sender
	DefaultTo []string
	Username  string
	Password  string
	Hello     string        // EHLO name; default "localhost"
	Timeout   time.Duration // bounds the whole session; default 15s
	// TLSConfig for STARTTLS; nil verifies the server's name as usual.
	TLSConfig *tls.Config
}

// ParseRecipients validates addresses (RFC 5322, bare addresses only) and returns them.
func ParseRecipients(to []string) ([]string, error) {
	if len(to) > MaxRecipients {
		return nil, fmt.Errorf("at most %d recipients", MaxRecipients)
	}
	out := make([]string, 0, len(to))
	for _, s := range to {
		a, err := mail.ParseAddress(s)
		if err != nil || a.Name != "" || strings.ContainsAny(a.Address, "\r\n<>") {
			return nil, fmt.Errorf("%q is not an email address", s)
		}
		out = append(out, a.Address)
	}
	return out, nil
}

// Send delivers one message to every recipient in one SMTP transaction.
func (e *Email) Send(ctx context.Context, n Notification, t Target) error {
	to := t.To
	if len(to) == 0 {
		to = e.DefaultTo
	}
	if e.Addr == "" || e.From == "" {
		return permanent("email is not configured (SMTP address and sender)")
	}
	rcpts, err := ParseRecipients(to)
	if err != nil || len(rcpts) == 0 {
		return permanent("no valid recipients: %v", err)
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return fmt.Errorf("smtp dial: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	host, _, _ := net.SplitHostPort(e.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return smtpErr("greeting", err)
	}
	defer c.Close()
	hello := e.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return smtpErr("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := e.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return smtpErr("STARTTLS", err)
		}
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return smtpErr("AUTH", err)
		}
	}
	envFrom := e.From
	if a, err := mail.ParseAddress(e.From); err == nil {
		envFrom = a.Address
	}
	if err := c.Mail(envFrom); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return smtpErr("RCPT TO "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(message(e.From, rcpts, n)); err != nil {
		return smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("end of DATA", err)
	}
	_ = c.Quit()
	return nil
}

// smtpErr classifies a reply: 5xx is permanent (RFC 5321 §4.2.1), 4xx and I/O errors are
// transient.
func smtpErr(stage string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return &Permanent{Err: fmt.Errorf("smtp %s: %w", stage, err)}
	}
	return fmt.Errorf("smtp %s: %w", stage, err)
}

// oneLine keeps header values on one line whatever the caller sent.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func message(from string, to []string, n Notification) []byte {
	subject := n.Title
	if subject == "" {
		subject = n.Type
	}
	if n.Priority == PriorityHigh || n.Priority == PriorityCritical {
		subject = "[" + strings.ToUpper(string(n.Priority)) + "] " + subject
	}
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", from)
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", oneLine(subject)))
	h("Date", n.CreatedAt.Format(time.RFC1123Z))
	h("Message-ID", "<"+n.ID+"@notifications.day-trade>")
	h("X-Daytrade-Notification-Id", n.ID)
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := n.Message
	if n.Ref != "" {
		body += "\n\nRef: " + n.Ref
	}
	_, _ = qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}
