package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

func ExampleSource() {
	fmt.Println(events.Source("ml-batch-predict") == events.SourceMLBatchPredict, events.SourceMLBatchPredict)
	// Output: true /day-trade/ml-batch-predict
}

// A worker mounts the receiver on its router beside its health routes.
func ExampleReceiver() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	recv, err := events.NewReceiver(rdb, store.NewKeys("ml"), events.ReceiverOptions{Logger: slog.Default()})
	if err != nil {
		panic(err)
	}
	recv.Handle(events.TypeMLBatchRequested, func(ctx context.Context, e cloudevents.Event) error {
		var req events.MLBatchRequested
		if err := events.DecodeData(e, &req); err != nil {
			return err // CodeInvalid: 400, dead-lettered, never retried
		}
		if len(req.Symbols) == 0 {
			return httpx.Invalid("symbols is empty")
		}
		// ... predict, store the result, mark the job; a CodeUnavailable error is retried.
		return nil
	})
	r := chi.NewRouter()
	r.Get("/health/readiness", func(w http.ResponseWriter, _ *http.Request) {})
	r.Method(http.MethodPost, "/", recv.HTTPHandler())
	_ = http.ListenAndServe
}
