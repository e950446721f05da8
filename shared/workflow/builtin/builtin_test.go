package builtin

import (
	"encoding/json"
	"testing"

	"github.com/day-trade/platform/shared/httpx"
)

func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig(PaperTrade, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Count != defaultCount || c.Lots != 1 || c.MaxOrders != defaultMaxOrders || len(c.Channels) != 1 || string(c.Channels[0]) != `"log"` {
		t.Errorf("defaults %+v", c)
	}
	if _, err := ParseConfig("nope", nil); httpx.AsError(err).Fields[0].Field != "workflow" {
		t.Errorf("unknown workflow: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `{"count":3,"symbols":["7203.T"]}`, `{"lots":11}`, `{"channels":["log",{"type":"webhook"}]}`, `{"x":1}`} {
		f.Add(DailyPredict, s)
		f.Add(PaperTrade, s)
	}
	f.Fuzz(func(t *testing.T, name, raw string) {
		c, err := ParseConfig(name, json.RawMessage(raw))
		if err != nil {
			if httpx.AsError(err).Code != httpx.CodeInvalid {
				t.Fatalf("error code %s", httpx.AsError(err).Code)
			}
			return
		}
		if c.Count < 1 || c.Count > maxCount || c.Lots < 1 || c.Lots > maxLots || c.MaxOrders < 1 || c.MaxOrders > maxOrders || len(c.Channels) == 0 {
			t.Fatalf("accepted out-of-range config %+v", c)
		}
	})
}
