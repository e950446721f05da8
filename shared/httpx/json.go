package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
)

// DefaultMaxBody bounds a JSON request body unless a handler asks for another limit.
const DefaultMaxBody = 1 << 20

var errTooLarge = errors.New("request body too large")

// Validator is implemented by request types that check themselves after decoding.
type Validator interface {
	Validate() error
}

// Decode reads one JSON value from r's body into v strictly: the content type must be JSON,
// unknown fields and trailing data are rejected, and the body is capped at maxBytes
// (DefaultMaxBody when <= 0). If v implements Validator, it is validated.
func Decode[T any](w http.ResponseWriter, r *http.Request, maxBytes int64) (T, error) {
	var v T
	if err := CheckJSON(r); err != nil {
		return v, err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBody
	}
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err, maxBytes)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return v, Invalid("request body must hold a single JSON value")
	}
	if val, ok := any(&v).(Validator); ok {
		if err := val.Validate(); err != nil {
			return v, err
		}
	} else if val, ok := any(v).(Validator); ok {
		if err := val.Validate(); err != nil {
			return v, err
		}
	}
	return v, nil
}

// CheckJSON refuses a request whose Content-Type is set and is not JSON (application/json or
// a +json type) with CodeUnsupported (415). A missing Content-Type is accepted: curl -d and
// many clients omit it, and the body is still parsed strictly.
func CheckJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return Errorf(CodeUnsupported, "content type %q is not JSON", ct)
	}
	return nil
}

// JSONOnly is middleware that answers 415 before next runs when CheckJSON refuses the
// request; for handlers that read the body themselves instead of through Decode.
func JSONOnly(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := CheckJSON(r); err != nil {
				WriteError(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func decodeError(err error, limit int64) error {
	var (
		syn    *json.SyntaxError
		typ    *json.UnmarshalTypeError
		maxErr *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxErr):
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", limit), Err: errTooLarge}
	case errors.As(err, &syn):
		return Invalid(fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		return Invalid("wrong JSON type", FieldError{Field: typ.Field, Reason: "must be " + typ.Type.String()})
	case errors.Is(err, io.EOF):
		return Invalid("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("request body is truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid("unknown field", FieldError{Field: field, Reason: "not allowed"})
	}
	return Invalid("invalid JSON body")
}

// Encode writes v as JSON with the given status.
func Encode(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
