package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
)

func TestEventSourcing(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, caps mq.Capabilities) {
		var out bytes.Buffer
		cfg := config{Prefix: exampletest.Prefix(t), Events: 25}
		got, err := run(ctx, url, &out, cfg)
		t.Logf("output:\n%s", &out)
		if !caps.Replay || !caps.OrderingByKey {
			// The example must refuse clearly, before appending anything.
			if !errors.Is(err, mq.ErrNotSupported) || !strings.Contains(err.Error(), "Replay") && !strings.Contains(err.Error(), "OrderingByKey") {
				t.Fatalf("run on %s without replay: got error %v, want one wrapping mq.ErrNotSupported that names the missing capability", caps.Driver, err)
			}
			if got.Appended != 0 {
				t.Errorf("events appended on a broker without replay: got %d, want 0", got.Appended)
			}
			t.Skipf("the %s driver lacks Replay or OrderingByKey, which eventsourcing needs; run said: %v", caps.Driver, err)
		}
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if got.Appended != cfg.Events {
			t.Errorf("appended: got %d events, want %d", got.Appended, cfg.Events)
		}
		// Fold the history here, independently of the projection code.
		want := map[string]int{}
		for _, e := range history(cfg.Events) {
			switch e.Type {
			case "opened":
				want[e.Account] = 0
			case "deposited":
				want[e.Account] += e.Amount
			case "withdrawn":
				want[e.Account] -= e.Amount
			}
		}
		if !maps.Equal(got.Live, want) {
			t.Errorf("live balances: got %v, want %v", got.Live, want)
		}
		if !maps.Equal(got.Rebuilt, want) {
			t.Errorf("rebuilt balances: got %v, want %v", got.Rebuilt, want)
		}
	})
}
