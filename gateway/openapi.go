package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/day-trade/platform/gateway/openapi"
)

// PathOpenAPI serves the OpenAPI 3.1 document of the public API.
//
// It is public (no credential, no rate limit by caller): it describes only what any client
// may call and which roles each operation needs, never keys, tenants or upstream hosts, and
// clients and SDK generators need it before they hold a key, as with any public API's docs.
// It is a precomputed byte slice with an ETag, so serving it costs no more than a 304.
const PathOpenAPI = "/api/v1/openapi.json"

// OpenAPIInfo heads the document.
var OpenAPIInfo = openapi.Info{
	Title:   "day-trade platform API",
	Version: "1.0.0",
	Description: "The public API of the day-trade platform, behind its gateway. Authenticate with an API key " +
		"(X-API-Key or Authorization: Bearer) or a JWT. Errors are RFC 9457 problem details.",
}

// OpenAPIOperations lists routes (plus the gateway's own API and this document) as the
// document's operations.
func OpenAPIOperations(routes []Route) []openapi.Operation {
	ops := make([]openapi.Operation, 0, len(routes)+6)
	for _, rt := range routes {
		ops = append(ops, openapi.Operation{Method: rt.Method, Path: rt.Path, Roles: rt.Roles, Function: rt.Function,
			Composite: rt.Composite != nil, Idempotent: rt.Idempotent})
	}
	for _, rt := range (&Gateway{}).ownRoutes() {
		ops = append(ops, openapi.Operation{Method: rt.Method, Path: rt.Path, Roles: rt.Roles, Idempotent: rt.Idempotent})
	}
	return append(ops, openapi.Operation{Method: http.MethodGet, Path: PathOpenAPI, Idempotent: true, Public: true})
}

// OpenAPIDocument is the document of the API that routes make, as JSON.
func OpenAPIDocument(routes []Route) ([]byte, error) {
	return openapi.Document(OpenAPIInfo, OpenAPIOperations(routes))
}

// openAPIHandler serves doc with an ETag, so clients revalidate with a 304.
func openAPIHandler(doc []byte) http.Handler {
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	length := strconv.Itoa(len(doc))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "public, max-age=300")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", length)
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		_, _ = w.Write(doc)
	})
}
