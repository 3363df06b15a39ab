package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
)

func TestLoadLeveling(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, _ mq.Capabilities) {
		var out bytes.Buffer
		cfg := config{
			Prefix:      exampletest.Prefix(t),
			Orders:      60,
			Publishers:  12,
			Rate:        25, // slow enough that a burst outpaces it on every broker
			Concurrency: 2,
			Every:       250 * time.Millisecond,
		}
		got, err := run(ctx, url, &out, cfg)
		t.Logf("output:\n%s", &out)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if got.Published != cfg.Orders {
			t.Errorf("published: got %d, want %d", got.Published, cfg.Orders)
		}
		if got.Handled != got.Published {
			t.Errorf("handled: got %d distinct orders, want %d, every one published", got.Handled, got.Published)
		}
		if got.MaxInFlight > cfg.Concurrency {
			t.Errorf("orders handled at once: got %d, want at most %d", got.MaxInFlight, cfg.Concurrency)
		}
		if got.PeakRate > cfg.Rate {
			t.Errorf("orders started in one second: got %d, want at most %d", got.PeakRate, cfg.Rate)
		}
		// The burst must have outrun the service: a queue formed.
		if got.MaxDepth < cfg.Orders/2 {
			t.Errorf("deepest queue: got %d, want at least %d (the burst should outpace the service)", got.MaxDepth, cfg.Orders/2)
		}
		// Working off the orders at Rate per second takes at least
		// Orders-1 intervals between the first start and the last.
		if minDrain := time.Duration(cfg.Orders-1) * time.Second / time.Duration(cfg.Rate); got.Drain < minDrain {
			t.Errorf("drain took %v, want at least %v at %d per second", got.Drain, minDrain, cfg.Rate)
		}
		if want := fmt.Sprintf("done: %d of %d orders fulfilled", cfg.Orders, cfg.Orders); !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	})
}
