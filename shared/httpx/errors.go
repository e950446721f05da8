// Package httpx holds the HTTP vocabulary every function and the gateway share:
// one error type with a code, one code→status table, one writer that emits
// RFC 9457 application/problem+json, and strict JSON decoding with size limits.
package httpx

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code classifies an application error. Callers act on codes, never on messages.
type Code string

const (
	CodeInvalid         Code = "invalid"         // 400: the request is malformed or fails validation
	CodeUnauthenticated Code = "unauthenticated" // 401
	CodeForbidden       Code = "forbidden"       // 403
	CodeNotFound        Code = "not_found"       // 404
	CodeMethod          Code = "method_not_allowed"
	CodeConflict        Code = "conflict"          // 409
	CodeTooLarge        Code = "too_large"         // 413
	CodeHeadersTooLarge Code = "headers_too_large" // 431
	CodeUnsupported     Code = "unsupported_media" // 415
	CodeUnprocessable   Code = "unprocessable"     // 422
	CodeRateLimited     Code = "rate_limited"      // 429
	CodeUpstream        Code = "upstream"          // 502: a provider or upstream answered badly
	CodeUnavailable     Code = "unavailable"       // 503: a dependency is down; retry later
	CodeTimeout         Code = "timeout"           // 504
	CodeInternal        Code = "internal"          // 500: a bug; details are logged, never sent
)

var statusByCode = map[Code]int{
	CodeInvalid:         http.StatusBadRequest,
	CodeUnauthenticated: http.StatusUnauthorized,
	CodeForbidden:       http.StatusForbidden,
	CodeNotFound:        http.StatusNotFound,
	CodeMethod:          http.StatusMethodNotAllowed,
	CodeConflict:        http.StatusConflict,
	CodeTooLarge:        http.StatusRequestEntityTooLarge,
	CodeHeadersTooLarge: http.StatusRequestHeaderFieldsTooLarge,
	CodeUnsupported:     http.StatusUnsupportedMediaType,
	CodeUnprocessable:   http.StatusUnprocessableEntity,
	CodeRateLimited:     http.StatusTooManyRequests,
	CodeUpstream:        http.StatusBadGateway,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeTimeout:         http.StatusGatewayTimeout,
	CodeInternal:        http.StatusInternalServerError,
}

// Status maps a code to its HTTP status; unknown codes are internal errors.
func (c Code) Status() int {
	if s, ok := statusByCode[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Retryable reports whether a CloudEvent or client call failing with this code
// may succeed if tried again (transient), as opposed to a poison input.
func (c Code) Retryable() bool {
	switch c {
	case CodeRateLimited, CodeUpstream, CodeUnavailable, CodeTimeout, CodeInternal:
		return true
	}
	return false
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error is the one application error type.
type Error struct {
	Code       Code
	Message    string        // safe to show to the caller
	Fields     []FieldError  // field-level validation details
	RetryAfter time.Duration // sent as Retry-After when > 0
	Extra      map[string]any
	Err        error // the cause; logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted, caller-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap attaches a code and a safe message to a cause.
func Wrap(err error, code Code, msg string) *Error {
	return &Error{Code: code, Message: msg, Err: err}
}

// Invalid builds a 400 error with field details.
func Invalid(msg string, fields ...FieldError) *Error {
	return &Error{Code: CodeInvalid, Message: msg, Fields: fields}
}

// ErrorCode returns the code of err, CodeInternal for foreign errors.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, errTooLarge):
		return CodeTooLarge
	}
	return CodeInternal
}

// AsError returns err as *Error, wrapping foreign errors as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: ErrorCode(err), Message: http.StatusText(ErrorCode(err).Status()), Err: err}
}
