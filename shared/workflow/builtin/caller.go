package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// TenantHeader tells a callee whose account a call touches when the callee runs without
// INTERNAL_TOKEN_PUBLIC_KEY (alone, in tests). A callee that verifies tokens ignores it; for
// those the Caller signs an identity token when it has a Signer.
const TenantHeader = "X-Tenant"

// Identity of the scheduler's calls: the tenant is the schedule's, the subject names the
// caller (audit), the role is what a tenant's trading automation needs.
const (
	WorkflowSubject = "workflow:execution-scheduler"
	WorkflowMethod  = "workflow"
)

// WorkflowRoles are the roles a workflow acts with: a trader's (place orders, send
// notifications, read data and predictions).
var WorkflowRoles = []string{"trader"}

// Minter mints the internal identity token a function verifies (auth.Signer).
type Minter interface {
	Mint(p *auth.Principal, audience string) (string, error)
}

// Caller calls other functions by their cluster-local Knative host,
// http://<function>.<namespace>.svc.cluster.local; on the local platform the client's
// transport dials the activator, which routes by that Host header.
type Caller struct {
	Client    *http.Client
	Namespace string
	// Timeout bounds each call. Default 30s.
	Timeout time.Duration
	// Signer, when set, signs every call as the gateway does: a short-lived token for the
	// schedule's tenant with WorkflowRoles, audience the callee. Without it only TenantHeader
	// is sent, which callees that verify tokens refuse (401).
	Signer Minter
}

// CallError is a callee's non-2xx answer.
type CallError struct {
	Function string
	Status   int
	Detail   string
	Rule     string // the trade function's rule, when it refused an order
}

func (e *CallError) Error() string {
	msg := fmt.Sprintf("%s answered %d", e.Function, e.Status)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Call sends in (JSON, when not nil) to fn's path for tenant and decodes a 2xx answer into out
// (when not nil). Errors are *httpx.Error: CodeUnavailable when fn could not be reached,
// CodeUpstream wrapping a *CallError for any other answer; their messages name fn.
func (c *Caller) Call(ctx context.Context, fn, method, path, tenant string, header http.Header, in, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", fn, err)
		}
		body = bytes.NewReader(b)
	}
	url := "http://" + fn + "." + c.Namespace + ".svc.cluster.local" + path
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set(TenantHeader, tenant)
	if c.Signer != nil {
		tok, err := c.Signer.Mint(&auth.Principal{Subject: WorkflowSubject, Tenant: tenant, Roles: WorkflowRoles, Method: WorkflowMethod}, fn)
		if err != nil {
			return fmt.Errorf("%s: sign the identity token: %w", fn, err)
		}
		req.Header.Set(auth.InternalTokenHeader, tok)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return httpx.Wrap(err, httpx.CodeUnavailable, fmt.Sprintf("%s is unreachable", fn))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return httpx.Wrap(err, httpx.CodeUnavailable, fmt.Sprintf("%s: reading the answer failed", fn))
	}
	if resp.StatusCode/100 != 2 {
		ce := &CallError{Function: fn, Status: resp.StatusCode}
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
			Rule   string `json:"rule"`
		}
		if json.Unmarshal(b, &p) == nil {
			ce.Detail, ce.Rule = p.Detail, p.Rule
			if ce.Detail == "" {
				ce.Detail = p.Title
			}
		}
		if resp.StatusCode == http.StatusNotFound && strings.Contains(ce.Detail, "no function serves") {
			ce.Detail = "function " + fn + " is not deployed (" + ce.Detail + ")"
		}
		if len(ce.Detail) > 300 {
			ce.Detail = ce.Detail[:300]
		}
		return httpx.Wrap(ce, httpx.CodeUpstream, ce.Error())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return httpx.Wrap(err, httpx.CodeUpstream, fmt.Sprintf("%s answered with an unreadable body", fn))
	}
	return nil
}

// callError returns err's *CallError, if it is a callee's answer.
func callError(err error) (*CallError, bool) {
	var ce *CallError
	ok := errors.As(err, &ce)
	return ce, ok
}
