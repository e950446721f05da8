// Package runtimeapi serves the AWS Lambda Runtime API (version 2018-06-01) and the
// registration half of the Extensions API (2020-01-01) from an httptest server, so that a
// test can run a real bootstrap binary as Lambda would: it points AWS_LAMBDA_RUNTIME_API at
// Addr, calls Invoke with an event, and gets back what the function posted to
// /response or /error.
//
// The endpoints follow AWS's OpenAPI description of the Runtime API:
//
//	GET  /2018-06-01/runtime/invocation/next           the next event, with its request id,
//	                                                   deadline, function ARN and trace id
//	POST /2018-06-01/runtime/invocation/{id}/response  the invocation's result
//	POST /2018-06-01/runtime/invocation/{id}/error     the invocation's error
//	POST /2018-06-01/runtime/init/error                a failure before the first /next
//	POST /2020-01-01/extension/register                an extension (aws-lambda-go registers
//	                                                   one to receive SIGTERM)
//	GET  /2020-01-01/extension/event/next              held until the server closes
package runtimeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FunctionARN is the ARN every invocation claims to be for.
const FunctionARN = "arn:aws:lambda:ap-northeast-1:123456789012:function:test"

// Result is what the function reported for one invocation: a payload from /response, or
// an Error from /error.
type Result struct {
	RequestID string
	Payload   []byte
	Error     *ErrorResponse
}

// ErrorResponse is the body a runtime posts to /error and /init/error.
type ErrorResponse struct {
	Message    string `json:"errorMessage"`
	Type       string `json:"errorType"`
	StackTrace []any  `json:"stackTrace,omitempty"`
}

// Server is a fake Lambda service for one function instance.
type Server struct {
	srv     *httptest.Server
	queue   chan *invocation
	closed  chan struct{}
	once    sync.Once
	nextID  atomic.Int64
	timeout time.Duration

	mu        sync.Mutex
	pending   map[string]*invocation
	initErr   *ErrorResponse
	polled    chan struct{} // closed on the first /next
	polledSet bool
}

type invocation struct {
	id      string
	payload []byte
	result  chan Result
}

// New starts a server. Every invocation gets timeout as its deadline.
func New(timeout time.Duration) *Server {
	s := &Server{
		queue:   make(chan *invocation),
		closed:  make(chan struct{}),
		pending: map[string]*invocation{},
		polled:  make(chan struct{}),
		timeout: timeout,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", s.respond(false))
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", s.respond(true))
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Lambda-Extension-Name") == "" {
			http.Error(w, `{"errorMessage":"missing Lambda-Extension-Name","errorType":"InvalidRequest"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Lambda-Extension-Identifier", "ext-"+strconv.FormatInt(s.nextID.Add(1), 10))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"functionName":"test","functionVersion":"$LATEST","handler":"bootstrap"}`)
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		select { // no lifecycle events in a test: hold until the end
		case <-s.closed:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusGone)
	})
	s.srv = httptest.NewServer(mux)
	return s
}

// Addr is the value for AWS_LAMBDA_RUNTIME_API (host:port, no scheme).
func (s *Server) Addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// Polled is closed once the function first asks for an invocation: its init is over.
func (s *Server) Polled() <-chan struct{} { return s.polled }

// InitError is what the function posted to /init/error, if anything.
func (s *Server) InitError() *ErrorResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initErr
}

// Invoke hands payload to the function's next /next and waits for its result.
func (s *Server) Invoke(ctx context.Context, payload []byte) (Result, error) {
	inv := &invocation{
		id:      fmt.Sprintf("req-%06d", s.nextID.Add(1)),
		payload: payload,
		result:  make(chan Result, 1),
	}
	s.mu.Lock()
	s.pending[inv.id] = inv
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, inv.id)
		s.mu.Unlock()
	}()
	select {
	case s.queue <- inv:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("runtimeapi: no runtime asked for invocation %s: %w", inv.id, ctx.Err())
	case <-s.closed:
		return Result{}, errors.New("runtimeapi: closed")
	}
	select {
	case res := <-inv.result:
		return res, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("runtimeapi: invocation %s got no response: %w", inv.id, ctx.Err())
	case <-s.closed:
		return Result{}, errors.New("runtimeapi: closed")
	}
}

// Close releases held requests and stops the server.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closed) })
	s.srv.Close()
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if !s.polledSet {
		s.polledSet = true
		close(s.polled)
	}
	s.mu.Unlock()
	select {
	case inv := <-s.queue:
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(s.timeout).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", FunctionARN)
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(inv.payload)
	case <-s.closed:
		w.WriteHeader(http.StatusGone)
	case <-r.Context().Done():
	}
}

func (s *Server) respond(isError bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, err := io.ReadAll(io.LimitReader(r.Body, 6<<20)) // Lambda's synchronous payload limit
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		inv, ok := s.pending[id]
		if ok {
			delete(s.pending, id)
		}
		s.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"errorMessage":"unknown or finished request id","errorType":"InvalidRequestID"}`)
			return
		}
		res := Result{RequestID: id}
		if isError {
			res.Error = &ErrorResponse{}
			if err := json.Unmarshal(body, res.Error); err != nil {
				res.Error = &ErrorResponse{Message: string(body), Type: r.Header.Get("Lambda-Runtime-Function-Error-Type")}
			}
		} else {
			res.Payload = body
		}
		inv.result <- res
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"OK"}`)
	}
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	var e ErrorResponse
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if json.Unmarshal(body, &e) != nil {
		e = ErrorResponse{Message: string(body)}
	}
	s.mu.Lock()
	s.initErr = &e
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}
