package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/seedmq/mq"
	"github.com/seedmq/mq/examples/internal/exampletest"
)

// TestSaga runs the saga on every broker, with its state and outbox on
// SQLite and on PostgreSQL (MQ_TEST_POSTGRES_DSN, from scripts/brokers).
func TestSaga(t *testing.T) {
	exampletest.Run(t, func(t *testing.T, ctx context.Context, url string, _ mq.Capabilities) {
		for _, db := range []struct{ name, dsn string }{{"sqlite", ""}, {"postgres", os.Getenv("MQ_TEST_POSTGRES_DSN")}} {
			t.Run(db.name, func(t *testing.T) {
				if db.name == "postgres" && db.dsn == "" {
					msg := "MQ_TEST_POSTGRES_DSN is not set: run scripts/brokers up postgres and eval \"$(scripts/brokers env)\""
					if os.Getenv("MQ_TEST_REQUIRE_BROKERS") == "1" {
						t.Fatal(msg)
					}
					t.Skip(msg)
				}
				testSaga(t, ctx, url, db.dsn)
			})
		}
	})
}

func testSaga(t *testing.T, ctx context.Context, url, dsn string) {
	var out bytes.Buffer
	cfg := config{Prefix: exampletest.Prefix(t), Orders: 9, Stock: 50, DB: dsn}
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
	// The relay published every order-placed at least twice: the inbox
	// dropped at least one copy of each.
	if got.Duplicates < cfg.Orders {
		t.Errorf("copies dropped by the inbox: got %d, want at least %d", got.Duplicates, cfg.Orders)
	}
}
