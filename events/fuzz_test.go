package events_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/redistest"
)

// FuzzReceiver feeds arbitrary bodies and CloudEvents headers to the receiver: it must never
// panic and never answer 5xx, because a malformed event is poison (400), not a transient
// failure the Broker would retry.
func FuzzReceiver(f *testing.F) {
	f.Add("application/json", "1.0", "id-1", "/day-trade/test", events.TypeExecutionTick, "", []byte(tickData))
	f.Add("application/cloudevents+json", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"`+events.TypeExecutionTick+`","data":{}}`))
	f.Add("application/cloudevents+json", "", "", "", "", "", []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"!!"}`))
	f.Add("application/cloudevents-batch+json", "", "", "", "", "", []byte(`[{}]`))
	f.Add("text/plain", "0.3", "id", "::", events.TypeExecutionTick, "2026-13-45", []byte{0xff, 0x00})
	f.Add("", "1.0", "id", "/s", "com.daytrade.unknown", "2026-01-01T00:00:00Z", []byte(nil))

	recv := mustReceiver(f, mustOpen(f, redistest.Start(f).URL()), events.ReceiverOptions{})
	recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error { return nil })
	h := recv.HTTPHandler()
	f.Fuzz(func(t *testing.T, contentType, specversion, id, source, typ, ceTime string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		for k, v := range map[string]string{
			"Content-Type": contentType, "Ce-Specversion": specversion, "Ce-Id": id,
			"Ce-Source": source, "Ce-Type": typ, "Ce-Time": ceTime,
		} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for malformed input: %s", rec.Code, rec.Body)
		}
	})
}
