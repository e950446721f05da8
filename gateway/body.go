package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/day-trade/platform/shared/httpx"
)

// Request bodies. A body over Config.MaxBodyBytes is the client's error (413) and never
// reaches a function, whole or cut: a declared Content-Length over the limit is refused by
// security.admit before anything else; a body of unknown length (chunked, or HTTP/2 without
// Content-Length) is read whole, up to the limit, once the caller is admitted (bufferBody),
// because a limit found halfway through a streamed body would leave the function with a
// truncated one and the gateway with a failed call to blame on the function's breaker. A body
// of declared length within the limit is streamed, unless the call may be retried; if the
// client breaks it off, clientBody remembers, and the failure is answered as the client's
// (400) and kept out of the breaker and the instance's health.

// bufferBody reads r's body whole, at most limit bytes, and puts it back replayable (Body,
// GetBody, ContentLength). false means it has answered: 413 over the limit, 400 when the
// client's body broke off.
func bufferBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	var (
		b   []byte
		err error
	)
	if r.ContentLength > 0 && r.ContentLength <= limit {
		// The server's body reader ends at Content-Length; a shorter body is an error.
		b = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, b)
	} else {
		b, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err == nil && int64(len(b)) > limit {
			err = &http.MaxBytesError{Limit: limit}
		}
	}
	if err != nil {
		httpx.WriteError(w, r, nil, bodyError(err, limit))
		return false
	}
	r.ContentLength = int64(len(b))
	r.TransferEncoding = nil // sent on with its length
	if len(b) == 0 {
		r.Body = http.NoBody
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		return true
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return true
}

// hasBody reports whether r carries a body still to be read.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// bodyError classifies a failure to read the client's body: over the limit (the runtime's
// MaxBytesReader or ours) is 413, anything else a body that broke off (400).
func bodyError(err error, limit int64) *httpx.Error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return tooLarge(min(limit, mb.Limit), err)
	}
	return &httpx.Error{Code: httpx.CodeInvalid, Message: "the request body could not be read to its end", Err: err}
}

// tooLarge is the 413 for a body over limit bytes.
func tooLarge(limit int64, err error) *httpx.Error {
	return &httpx.Error{Code: httpx.CodeTooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", limit), Err: err}
}

// clientBody is a request body streamed to a function. It remembers the first failure to read
// it from the client; the transport reads it on its own goroutine, hence the atomic.
type clientBody struct {
	io.ReadCloser
	err atomic.Pointer[error]
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// failure is the client's body failure, nil if there was none.
func (b *clientBody) failure() error {
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}
