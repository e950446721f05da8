// Package batchtest delivers CloudEvents to a worker in tests the way a Broker does: over
// real HTTP with the CloudEvents SDK, in binary or structured mode, retrying what a Broker
// retries.
package batchtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Event builds an event with JSON data.
func Event(tb testing.TB, id, typ, source string, data any) cloudevents.Event {
	tb.Helper()
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetType(typ)
	e.SetSource(source)
	e.SetTime(time.Now().UTC())
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		tb.Fatal(err)
	}
	return e
}

// Send posts e once to url and returns the HTTP status (0 when nothing answered).
func Send(tb testing.TB, url string, e cloudevents.Event, structured bool) int {
	tb.Helper()
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(url))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if structured {
		ctx = cloudevents.WithEncodingStructured(ctx)
	} else {
		ctx = cloudevents.WithEncodingBinary(ctx)
	}
	res := c.Send(ctx, e)
	var hr *cehttp.Result
	if cloudevents.ResultAs(res, &hr) {
		return hr.StatusCode
	}
	if cloudevents.IsACK(res) {
		return http.StatusOK
	}
	return 0
}

// Deliver sends e until it gets an answer a Broker would not retry (anything but
// nothing, 429 and 5xx) and returns that status. The pause between tries only paces
// the loop; a deadline stops a hang.
func Deliver(tb testing.TB, url string, e cloudevents.Event, structured bool) int {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := Send(tb, url, e, structured)
		if st != 0 && st != http.StatusTooManyRequests && st < 500 {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("event %s: still %d after 30s", e.ID(), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
