package main

import (
	"bytes"
	"context"
	"maps"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
	"github.com/seedmq/mq/middleware"
)

func TestDeadLetter(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, _ mq.Capabilities) {
		var out bytes.Buffer
		got, err := run(ctx, url, &out, config{Prefix: exampletest.Prefix(t)})
		t.Logf("output:\n%s", out.String())
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		for _, c := range []struct {
			name      string
			got, want int
		}{
			{"invoices published", got.Invoices, 5},
			{"invoices billed", got.Billed, 4},
			{"dead letters", got.DeadLettered, 2},
			{"dead letters redriven", got.Redriven, 1},
		} {
			if c.got != c.want {
				t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
			}
		}
		want := map[string]string{
			"invoice-003": middleware.ReasonMaxAttempts,
			"invoice-005": middleware.ReasonPermanent,
		}
		if !maps.Equal(got.Reasons, want) {
			t.Errorf("dead-letter reasons: got %v, want %v", got.Reasons, want)
		}
	})
}
