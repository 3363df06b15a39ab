package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
)

func TestCheckout(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, caps mq.Capabilities) {
		var out bytes.Buffer
		cfg := config{Prefix: exampletest.Prefix(t), Orders: 6, More: 3}
		got, err := run(ctx, url, &out, cfg)
		t.Logf("output:\n%s", &out)
		if !caps.FanOut {
			// The example must refuse clearly, before publishing anything.
			if !errors.Is(err, mq.ErrNotSupported) || !strings.Contains(err.Error(), "FanOut") {
				t.Fatalf("run on %s without fan-out: got error %v, want one wrapping mq.ErrNotSupported that names FanOut", caps.Driver, err)
			}
			if got.Placed != 0 {
				t.Errorf("orders placed on a broker without fan-out: got %d, want 0", got.Placed)
			}
			t.Skipf("the %s driver has no FanOut, which checkout needs; run said: %v", caps.Driver, err)
		}
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		if want := cfg.Orders + cfg.More; got.Placed != want {
			t.Errorf("placed: got %d, want %d", got.Placed, want)
		}
		for _, s := range services {
			if got.Got[s] != got.Placed {
				t.Errorf("%s: got %d orders, want %d, every order placed", s, got.Got[s], got.Placed)
			}
		}
		// Loyalty joined after the first orders: it gets exactly the later ones.
		if got.Got["loyalty"] != cfg.More {
			t.Errorf("loyalty: got %d orders, want %d, those placed after it joined", got.Got["loyalty"], cfg.More)
		}
		if n := len(got.Got); n != len(services)+1 {
			t.Errorf("services that got orders: got %d, want %d", n, len(services)+1)
		}
	})
}
