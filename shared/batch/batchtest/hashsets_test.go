package batchtest_test

import (
	"encoding/json"
	"testing"

	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// The counter the crash test relies on sees a result written twice even when the code under
// test would not log it: Results.Put refuses the second write and is counted once; a raw
// HSET over the same field (a broken, non-idempotent writer) is counted again.
func TestHashSetsCountsEveryWriteOfAResult(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()
	res := batch.NewResults(rdb, store.NewKeys("ml"), 0)
	sets := batchtest.CountHashSets(t, rdb, "ml:batch:")

	it := batch.Item{Symbol: "7203.T", OK: true, Value: json.RawMessage(`1`)}
	for i, want := range []bool{true, false} {
		if ok, err := res.Put(ctx, "job-1", it); err != nil || ok != want {
			t.Fatalf("put %d: %v %v", i, ok, err)
		}
	}
	if err := res.Attempt(ctx, "job-1", []string{"7203.T", "6758.T"}); err != nil {
		t.Fatal(err)
	}
	if err := res.Attempt(ctx, "job-1", []string{"7203.T"}); err != nil {
		t.Fatal(err)
	}
	sets.Sync(t)
	if n := sets.Count(res.Key("job-1")); n != 1 {
		t.Fatalf("idempotent writer: %d sets counted, want 1", n)
	}
	if a, _ := res.Attempts(ctx, "job-1"); len(a) != 3 || a[0] != "7203.T" || a[2] != "7203.T" {
		t.Fatalf("attempts %v", a)
	}

	// What a broken writer does: the value is set again and the write log does not show it.
	if err := rdb.HSet(ctx, res.Key("job-1"), "7203.T", `{"symbol":"7203.T","ok":true,"value":2}`).Err(); err != nil {
		t.Fatal(err)
	}
	sets.Sync(t)
	if n := sets.Count(res.Key("job-1")); n != 2 {
		t.Fatalf("after an overwrite: %d sets counted, want 2", n)
	}
	if w, _ := res.Writes(ctx, "job-1"); len(w) != 1 {
		t.Fatalf("write log %v", w)
	}
	if n := sets.Count("other:batch:x:results"); n != 0 {
		t.Fatalf("a key outside the prefix was counted: %d", n)
	}
}
