package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
)

func TestSaga(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, _ mq.Capabilities) {
		var out bytes.Buffer
		cfg := config{Prefix: exampletest.Prefix(t), Orders: 9, Stock: 50}
		got, err := run(ctx, url, &out, cfg)
		t.Logf("output:\n%s", &out)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		// Orders 3, 6 and 9 have declined cards; quantities cycle 1, 2, 3.
		wantStock := cfg.Stock
		for i := range cfg.Orders {
			if (i+1)%3 != 0 {
				wantStock -= 1 + i%3
			}
		}
		for _, c := range []struct {
			name      string
			got, want int
		}{
			{"confirmed orders", got.Confirmed, 6},
			{"cancelled orders", got.Cancelled, 3},
			{"cards charged", got.Charged, 6},
			{"cards declined", got.Declined, 3},
			{"stock after", got.StockAfter, wantStock},
			{"attempt of the redelivery after the crash", got.Recovered, 2},
		} {
			if c.got != c.want {
				t.Errorf("%s: got %d, want %d", c.name, c.got, c.want)
			}
		}
		if len(got.Problems) > 0 {
			t.Errorf("inconsistencies: got %q, want none", got.Problems)
		}
		// Every order-placed was sent twice: the orders service alone sees
		// one duplicate end event per order, and payments one redelivery.
		if min := cfg.Orders + 1; got.Duplicates < min {
			t.Errorf("duplicates recognised: got %d, want at least %d", got.Duplicates, min)
		}
	})
}
